"""How often would a hold-out design meet the KS bar? Redraws calibration and held-out runs from a
pool of lab runs of one mode, calibrates on the one and validates on the other, many times.

    python -m calibration.holdout_power RUNS_DIR... --mode partition --calibrate 4 --hold-out 4
    python -m calibration.holdout_power HELD_DIR... --calibrate-from CAL_DIR... --mode hang ...

With --calibrate-from the calibration runs are drawn from their own pool (a design whose
calibration and held-out runs differ, as CI's do), else both from the one pool.

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
              seed: int, cal_pool: list[dict] | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    source = pool if cal_pool is None else cal_pool
    ks = []
    for t in track(range(draws), description=f"{mode} {n_cal}+{n_held}", transient=True):
        order = rng.permutation(len(source))
        lost = [i for i in order if owner_lost(source[i])]
        kept = [i for i in order if not owner_lost(source[i])]
        cal = lost[:n_cal // 2] + kept[:n_cal - n_cal // 2] if lost and kept else order[:n_cal].tolist()
        rest = [i for i in order if i not in cal] if cal_pool is None \
            else rng.permutation(len(pool)).tolist()
        held = rest[:n_held]
        fitted = calibrate([source[i] for i in cal], "draw")
        ks.append(validate([pool[i] for i in held], fitted, seed=t, reps=reps)["modes"][mode]
                  ["ks_distance"])
    return np.array(ks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--mode", required=True, choices=["crash", "hang", "partition"])
    ap.add_argument("--calibrate-from", nargs="+", metavar="RUNS_DIR",
                    help="draw the calibration runs from these instead")
    ap.add_argument("--calibrate", type=int, default=4)
    ap.add_argument("--hold-out", type=int, default=4)
    ap.add_argument("--draws", type=int, default=150)
    ap.add_argument("--replays", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    def of_mode(dirs: list[str]) -> list[dict]:
        return [r for r in load_results(dirs) if r["meta"]["scenario"] == a.mode]

    pool = of_mode(a.runs)
    cal_pool = of_mode(a.calibrate_from) if a.calibrate_from else None
    if cal_pool is None and len(pool) < a.calibrate + a.hold_out:
        ap.error(f"--calibrate {a.calibrate} + --hold-out {a.hold_out}: the pool has only "
                 f"{len(pool)} {a.mode} runs")
    if cal_pool is not None and (len(cal_pool) < a.calibrate or len(pool) < a.hold_out):
        ap.error(f"--calibrate {a.calibrate}, --hold-out {a.hold_out}: the pools have "
                 f"{len(cal_pool)} and {len(pool)} {a.mode} runs")
    ks = pass_rate(pool, a.mode, a.calibrate, a.hold_out, a.draws, a.replays, a.seed, cal_pool)
    drawn = f"{len(pool)} runs" if cal_pool is None else \
        f"{len(cal_pool)} calibration and {len(pool)} held-out runs"
    print(f"{a.mode} calibrate {a.calibrate} hold out {a.hold_out} ({a.draws} draws from "
          f"{drawn}): pooled KS mean {ks.mean():.3f}, p90 {np.percentile(ks, 90):.3f}, "
          f"max {ks.max():.3f}; below {KS_BAR} in {np.mean(ks < KS_BAR) * 100:.0f} %")


if __name__ == "__main__":
    main()
