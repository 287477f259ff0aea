#!/usr/bin/env bash
# How the committed EMQX calibration set is made (about 50 min on 2 cores):
#   bash lab/emqx/calibration-set.sh OUT [HELD_OUT_RUNS_PER_MODE] [CALIBRATION_RUNS_PER_MODE]
# OUT/calibration-runs: runs that `twin calibrate` fits; OUT/held-out: runs made after them, which
# only `twin validate` reads. Each mode's runs hit the scenario's own target (the node with the
# most subscribers); EMQX has no leader whose loss would need runs of its own.
# Histories (the JSONL every figure can be recomputed from) stay in OUT/raw.
set -euo pipefail
out=${1:?usage: calibration-set.sh OUT [HELD_OUT_RUNS_PER_MODE] [CALIBRATION_RUNS_PER_MODE]}
held=${2:-10}
per_mode=${3:-3}
broker=${BROKER:-emqx-local}
mkdir -p "$out/calibration-runs" "$out/held-out"
for mode in crash hang partition; do
  twin lab run "lab/scenarios/$mode.toml" --broker "$broker" --repeat "$per_mode" --out "$out/raw/calibration"
  cp "$out"/raw/calibration/"$mode"-*.json "$out/calibration-runs/"
done
for mode in crash hang partition; do
  twin lab run "lab/scenarios/$mode.toml" --broker "$broker" --repeat "$held" --out "$out/raw/held-out"
  cp "$out"/raw/held-out/"$mode"-*.json "$out/held-out/"
done
