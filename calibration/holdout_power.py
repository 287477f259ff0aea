"""How often would a hold-out design meet the KS bar? Redraws calibration and held-out runs from a
pool of lab runs of one mode, calibrates on the one and validates on the other, many times.

    python -m calibration.holdout_power RUNS_DIR... --mode partition --calibrate 4 --hold-out 4

Calibration runs are drawn half with the session store's leader failed, half without (as the
stand-in's CI loop made them) where the pool has both kinds (EMQX's has one). The pool is
finite, so designs that use most of it look steadier than they are.
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.progress import track

from calibration.fit import calibrate
from calibration.results import load_results, owner_lost
from calibration.validate import KS_BAR, validate


def pass_rate(pool: list[dict], mode: str, n_cal: int, n_held: int, draws: int, reps: int,
              seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ks = []
    for t in track(range(draws), description=f"{mode} {n_cal}+{n_held}", transient=True):
        order = rng.permutation(len(pool))
        lost = [i for i in order if owner_lost(pool[i])]
        kept = [i for i in order if not owner_lost(pool[i])]
        cal = lost[:n_cal // 2] + kept[:n_cal - n_cal // 2] if lost and kept else order[:n_cal].tolist()
        held = [i for i in order if i not in cal][:n_held]
        fitted = calibrate([pool[i] for i in cal], "draw")
        ks.append(validate([pool[i] for i in held], fitted, seed=t, reps=reps)["modes"][mode]
                  ["ks_distance"])
    return np.array(ks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--mode", required=True, choices=["crash", "hang", "partition"])
    ap.add_argument("--calibrate", type=int, default=4)
    ap.add_argument("--hold-out", type=int, default=4)
    ap.add_argument("--draws", type=int, default=150)
    ap.add_argument("--replays", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    pool = [r for r in load_results(a.runs) if r["meta"]["scenario"] == a.mode]
    if len(pool) < a.calibrate + a.hold_out:
        ap.error(f"--calibrate {a.calibrate} + --hold-out {a.hold_out}: the pool has only "
                 f"{len(pool)} {a.mode} runs")
    ks = pass_rate(pool, a.mode, a.calibrate, a.hold_out, a.draws, a.replays, a.seed)
    print(f"{a.mode} calibrate {a.calibrate} hold out {a.hold_out} ({a.draws} draws from "
          f"{len(pool)} runs): pooled KS mean {ks.mean():.3f}, p90 {np.percentile(ks, 90):.3f}, "
          f"max {ks.max():.3f}; below {KS_BAR} in {np.mean(ks < KS_BAR) * 100:.0f} %")


if __name__ == "__main__":
    main()
