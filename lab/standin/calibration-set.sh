#!/usr/bin/env bash
# How the committed stand-in calibration set was made (about 30 min on 2 cores):
#   bash lab/standin/calibration-set.sh OUT [HELD_OUT_RUNS_PER_MODE] [CALIBRATION_RUNS_PER_KIND]
# OUT/calibration-runs: per mode runs whose failed node leads the session store and runs whose
# does not (both windows get measured); OUT/held-out: runs of each scenario's own target.
# The summaries are what calibrate/validate read; the histories stay in OUT/raw.
set -euo pipefail
out=${1:?usage: calibration-set.sh OUT [HELD_OUT_RUNS_PER_MODE] [CALIBRATION_RUNS_PER_KIND]}
held=${2:-6}
per_kind=${3:-2}
mkdir -p "$out/calibration-runs" "$out/held-out"
for mode in crash hang partition; do
  for target in session_store_leader session_store_follower; do
    twin lab run "lab/scenarios/$mode.toml" --broker standin --sessions durable --target "$target" --repeat "$per_kind" \
      --out "$out/raw/$target"
    for ((k = 0; k < per_kind; k++)); do
      cp "$out/raw/$target/$mode-$k.json" "$out/calibration-runs/$mode-${target#session_store_}-$k.json"
    done
  done
  twin lab run "lab/scenarios/$mode.toml" --broker standin --sessions durable --repeat "$held" --out "$out/raw/held-out"
  cp "$out"/raw/held-out/"$mode"-*.json "$out/held-out/"
done
