"""The model's error measured against the lab: each held-out run replayed with the calibrated
values, lab vs twin per run and pooled per mode, with how much of it the choice of runs explains."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from calibration import censored
from calibration.replay import REPLAYS, refused_share, released_at, replay
from calibration.results import (
    NOT_REPLAYED,
    CalibrationError,
    client_overhead_s,
    first_retry_s,
    initial_counts,
    lb_down_at,
    measured_s,
    mode_of,
    origin,
    owner_lost,
    target_censored,
    target_outages,
)
from calibration.session_store import ROLES_POLL_S
from sim.calibration_file import draw

KS_BAR = 0.2  # issue #5: pooled KS distance below this, per mode


def _pcts(x: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _compare(lab: np.ndarray, sim: np.ndarray) -> dict[str, Any]:
    lp, sp = _pcts(lab), _pcts(sim)
    return {"lab": lp, "sim": sp,
            "rel_error": {k: (sp[k] - lp[k]) / lp[k] if lp[k] else None for k in lp},
            "ks_distance": float(stats.ks_2samp(lab, sim).statistic),
            # how far apart the two CDFs are in seconds (mean absolute shift): KS alone cannot
            # tell a 30 ms offset between two narrow distributions from a wrong shape
            "wasserstein_s": float(stats.wasserstein_distance(lab, sim)),
            "samples": {"lab": int(len(lab)), "sim": int(len(sim))}}


def ks_over_runs(lab: list[np.ndarray], sim: list[np.ndarray], seed: int = 1,
                 draws: int = 400, bar: float = KS_BAR, lab_cens: list[np.ndarray] | None = None,
                 sim_cens: list[np.ndarray] | None = None) -> dict[str, Any] | None:
    """How much the pooled KS owes to which runs were held out: the pooled KS of random halves of
    the held-out runs (drawn without replacement, each run with its own replay). A run's outages
    share its LB decision, store window and CONNACK latency, so runs, not clients, are the
    independent samples: this is how often a hold-out half as large would have met the bar."""
    n = len(lab)
    if n < 4:
        return None
    k = n // 2
    rng = np.random.default_rng(seed)
    if lab_cens is not None and sim_cens is not None and censored.any_censored(*lab_cens, *sim_cens):
        def cat(x: list[np.ndarray], pick) -> np.ndarray:
            return np.concatenate([x[i] for i in pick])

        ks = np.array([censored.km_ks(cat(lab, pick), cat(lab_cens, pick), cat(sim, pick),
                                      cat(sim_cens, pick))
                       for pick in (rng.choice(n, k, replace=False) for _ in range(draws))])
    else:
        ks = np.array([stats.ks_2samp(np.concatenate([lab[i] for i in pick]),
                                      np.concatenate([sim[i] for i in pick])).statistic
                       for pick in (rng.choice(n, k, replace=False) for _ in range(draws))])
    return {"runs": k, "range90": [float(np.percentile(ks, 5)), float(np.percentile(ks, 95))],
            "bar": bar, "below_bar": float(np.mean(ks < bar)), "draws": draws}


def rel_error_over_runs(lab: list[np.ndarray], sim: list[np.ndarray], seed: int = 1,
                        draws: int = 1000, lab_cens: list[np.ndarray] | None = None,
                        sim_cens: list[np.ndarray] | None = None) -> dict[str, list[float]] | None:
    """The pooled p50/p95 relative error's 95 % interval when the held-out runs are resampled
    with replacement (each run with its own replay): runs, not clients, are the independent
    samples, and where a run's outages sit in one of two modes (a crash's first retry finds the
    dead node or not) the pooled median jumps with the mix of runs."""
    if len(lab) < 2:
        return None
    if lab_cens is not None and sim_cens is not None and censored.any_censored(*lab_cens, *sim_cens):
        return None  # Kaplan-Meier percentiles may lie beyond a resample's end: not resampled
    rng = np.random.default_rng(seed)
    errs: dict[str, list[float]] = {"p50": [], "p95": []}
    for _ in range(draws):
        pick = rng.integers(0, len(lab), len(lab))
        lp = np.percentile(np.concatenate([lab[i] for i in pick]), [50, 95])
        sp = np.percentile(np.concatenate([sim[i] for i in pick]), [50, 95])
        for k, at_lab, at_sim in zip(("p50", "p95"), lp, sp, strict=True):
            errs[k].append((at_sim - at_lab) / at_lab if at_lab else 0.0)
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in errs.items()}


def consistent_with_targets(row: dict[str, Any], rel: float = 0.15) -> bool:
    """What a few fresh runs can show: the runs do not put the error of the pooled median or p95
    beyond `rel` (its run-resampled 95 % interval reaches into +-rel). Fails on an error every run
    shares; a mix of run types alone cannot fail it. Pooled over one run: the point error."""
    spread = row.get("rel_error_runs95")
    if not spread:
        return meets_targets(row, rel, ks=None)
    return all(lo <= rel and hi >= -rel for lo, hi in spread.values())


def validate(results: list[dict[str, Any]], calibration: dict[str, Any], seed: int = 1,
             reps: int = REPLAYS) -> dict[str, Any]:
    """Per held-out lab run and pooled per mode: lab vs the calibrated twin's replay."""
    rng = np.random.default_rng(seed)
    runs, skipped = [], []
    pooled: dict[str, dict[str, list]] = {}
    for r in results:
        meta = r["meta"]
        mode = mode_of(r)
        fitted = calibration["modes"].get(mode) if mode else None
        lab = target_outages(r)
        lab_c = target_censored(r)  # still out at the run's end
        if fitted is None or len(lab) + len(lab_c) == 0:
            why = NOT_REPLAYED.get(meta["fault"], f"no calibration for mode {mode}" if mode
                                   else "not a node fault")
            skipped.append({"run": meta["source_file"], "why": why if len(lab) else "no outages"})
            continue
        released = released_at(r)
        refused = refused_share(r, released)
        sim = replay(meta, fitted, rng, reps, owner_lost(r), lb_down_at(r), released, refused,
                     initial_counts(r), measured_s(r), first_retry_s(r))
        lab_all = np.concatenate([lab, lab_c])
        lab_mask = np.arange(len(lab_all)) >= len(lab)
        compared = censored.compare(lab_all, lab_mask, sim["outages"], sim["censored"]) \
            if censored.any_censored(lab_mask, sim["censored"]) else _compare(lab, sim["outages"])
        o = origin(r)
        coll = fitted["collateral"]
        others = (meta["clients"]["subscribers"] + meta["clients"]["publishers"]
                  - (o["target_clients"] if o else 0))
        row = {
            "run": meta["source_file"], "mode": mode, "target": meta.get("target"),
            "placement_known": o is not None,
            **compared,
            "session_present": {"lab": r["sessions"]["present_ratio"], "sim": sim["present_ratio"]},
            "acknowledged_lost": {"lab": r["messages"]["acknowledged_lost"],
                                  "sim": int(round(sim["acknowledged_lost"]))},
            "duplicated": {"lab": r["messages"]["duplicated"], "sim": round(sim["duplicated"], 2)},
            "collateral_outages": {"lab": len(o["collateral_outages"]) if o else None,
                                   "sim": round(coll["outages_per_other_client"] * others, 1)},
            "lab_outages": lab.tolist(),
        }
        if len(lab_c):
            row["lab_censored_s"] = lab_c.tolist()
        key = regime(r, results)
        if key != mode:
            row["regime"] = key
        runs.append(row)
        p = pooled.setdefault(key, {"lab": [], "sim": [], "runs": [], "released": [],
                                    "refused": [], "lab_c": [], "sim_c": [], "connack": [],
                                    "overhead": [], "mode": mode})
        if o and o.get("connack_latency_s"):
            p["connack"].append(o["connack_latency_s"])
        if late := client_overhead_s(r):
            p["overhead"].append(late)
        if released is not None:
            p["released"].append(released)
        if refused is not None:
            p["refused"].append(refused)
        p["lab"].append(lab_all)
        p["lab_c"].append(lab_mask)
        p["sim"].append(sim["outages"])
        p["sim_c"].append(sim["censored"])
        p["runs"].append(meta["source_file"])
    if not runs:
        raise CalibrationError("no run matches a calibrated failure mode")
    by_mode = {key: {"runs": len(p["runs"]),
                     **_pooled_compare(p),
                     "ks_half_of_runs": ks_over_runs(p["lab"], p["sim"], seed, lab_cens=p["lab_c"],
                                                     sim_cens=p["sim_c"]),
                     "rel_error_runs95": rel_error_over_runs(p["lab"], p["sim"], seed,
                                                             lab_cens=p["lab_c"], sim_cens=p["sim_c"]),
                     "sim_outages": np.concatenate(p["sim"]).tolist(),
                     **_censored_at(p),
                     "release_s": _release_check(p["released"], calibration["modes"][p["mode"]],
                                                 p["mode"] in ("hang", "partition")),
                     "refused_share": _share_check(p["refused"], calibration["modes"][p["mode"]]),
                     **{name: _latency_check(p[got], calibration["modes"][p["mode"]], name)
                        for got, name in (("connack", "connack_latency_s"),
                                         ("overhead", "reconnect_overhead_s"))}}
               for key, p in sorted(pooled.items())}
    return {"runs": runs, "modes": by_mode, "skipped": skipped,
            "calibration": calibration.get("name"), "seed": seed, "replays_per_run": reps}


def regime(r: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """What a run is pooled with: its failure mode, and the LB (algorithm, probe) where the runs
    of that mode differ in it: under least connections or a 5-tuple hash a hang is not the same
    experiment."""
    mode = mode_of(r)

    def lb(x: dict[str, Any]) -> tuple[str, str]:
        return x["meta"]["lb"]["algorithm"], x["meta"]["lb"]["probe"]

    if len({lb(x) for x in results if mode_of(x) == mode}) < 2:
        return str(mode)
    algorithm, probe = lb(r)
    return f"{mode}, {algorithm}, {probe} probe"


def _censored_at(p: dict[str, list]) -> dict[str, list[int]]:
    """Which of the pooled twin outages were still open at their run's end (absent: none)."""
    at = np.flatnonzero(np.concatenate(p["sim_c"]))
    return {"sim_censored_at": at.tolist()} if len(at) else {}


def _pooled_compare(p: dict[str, list]) -> dict[str, Any]:
    lab, sim = np.concatenate(p["lab"]), np.concatenate(p["sim"])
    lab_c, sim_c = np.concatenate(p["lab_c"]), np.concatenate(p["sim_c"])
    return censored.compare(lab, lab_c, sim, sim_c) if censored.any_censored(lab_c, sim_c) \
        else _compare(lab, sim)


def meets_targets(row: dict[str, Any], rel: float = 0.15, ks: float | None = KS_BAR) -> bool:
    """Issue #5's bar: median and p95 within 15 %, KS distance below 0.2. `ks=None` for one run:
    its 20 or so clients time out together on the same LB decision and store window, and the KS
    of 20 samples has a 5 % critical value of 0.30, so the KS bar applies to runs pooled."""
    return (censored.percentile_met(row, "p50", rel) and censored.percentile_met(row, "p95", rel)
            and (ks is None or row["ks_distance"] < ks))



def _release_check(held_out: list[float], fitted: dict[str, Any], silent: bool
                   ) -> dict[str, Any] | None:
    """The held-out runs' release times against the calibration's (the replay took each run's
    own): the share of held-out windows inside the calibration's range, widened for a silent
    failure by a quarter tick (Erlang's detector fires within one tick interval, a quarter of the
    tick time), else by one poll of the watcher."""
    store = fitted["mechanism"].get("session_store") or {}
    cal = store.get("release_pooled_s") or [w for ws in store.get("down_s", {}).values() for w in ws]
    if not held_out or not cal:
        return None
    slack = (fitted.get("lab_dist_net_ticktime_s") or 0.0) / 4 if silent else ROLES_POLL_S
    lo, hi = min(cal) - slack, max(cal) + slack
    inside = float(np.mean([lo <= w <= hi for w in held_out]))
    return {"held_out": held_out, "calibration": cal, "range": [lo, hi], "inside": inside}


def _share_check(held_out: list[float], fitted: dict[str, Any]) -> dict[str, Any] | None:
    """The held-out runs' refusal shares against the calibration runs' (the replay took each run's
    own): with a handful of calibration runs this is where a fresh calibration is weakest."""
    cal = (fitted["mechanism"].get("session_store") or {}).get("refuse_p_per_run") or []
    if not held_out or not cal:
        return None
    lo, hi = min(cal), max(cal)
    return {"held_out": held_out, "calibration": cal, "range": [lo, hi],
            "inside": float(np.mean([lo <= x <= hi for x in held_out])),
            "mean": {"held_out": float(np.mean(held_out)), "calibration": float(np.mean(cal))}}


def _latency_check(held_out: list[list[float]], fitted: dict[str, Any], key: str
                   ) -> dict[str, Any] | None:
    """The held-out runs' per-attempt latencies (CONNACK, the fleet's lateness) against the
    calibrated fit `key` the replay draws from: per-run medians, and the pooled KS distance to the
    fit. Each moves a whole run by ms (the stand-in's crash runs have CONNACK medians of 1.7 to
    11.7 ms), which decides the KS of outages that sit within 10 ms of each other."""
    fit = fitted["mechanism"].get(key)
    if not held_out or not fit:
        return None
    lab = np.concatenate(held_out)
    sim = draw(fit, 20 * len(lab), np.random.default_rng(0))
    return {"held_out_run_medians": [float(np.median(x)) for x in held_out],
            "calibrated_median": fit["median"],
            "ks_distance": float(stats.ks_2samp(lab, sim).statistic)}
