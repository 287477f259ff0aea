"""Fit, per failure mode, what the mechanistic transient model cannot know by itself: how long the
LB's probe takes to give up on a silent node, the client's own reconnect overhead, the broker's
CONNACK latency and session store, the per-client outage of the failed node's clients (for the
long-run pools), the collateral outages of clients on surviving nodes, session resumption and
message loss. Output: a calibration file (docs/calibration.md), read by `sim.calibration_file`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import stats

from calibration import censored as censored_stats
from calibration.replay import replay
from calibration.results import (
    LB_POLL_S,
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
from calibration.session_store import CLIENT_GAVE_UP, session_store
from lab.summary_schema import failure_detector_tick_s
from sim import __version__
from sim.calibration_file import FAMILIES, QUANTILES

MIN_SAMPLES = 20
MAX_FIT_KS = 0.1  # above this the best family is reported but the pools sample the data


def fit_positive(x: np.ndarray, censored: np.ndarray | None = None) -> dict[str, Any]:
    """Fit each family with location 0; choose the smallest KS statistic; report all. Outages
    still open at a run's end (`censored`) enter as right-censored: a censored likelihood
    (scipy's CensoredData) for the families, Kaplan-Meier for the KS and the quantiles; levels
    the Kaplan-Meier curve never reaches take the best family's quantile (`tail_from`)."""
    x = np.maximum(np.asarray(x, dtype=float), 1e-3)
    if censored is not None and np.any(censored):
        return _fit_censored(x, np.asarray(censored, bool))
    fits = {}
    for name, family in FAMILIES.items():
        params = family.fit(x, floc=0)
        ks = stats.kstest(x, family.name, args=params)
        fits[name] = {"params": [float(p) for p in params], "ks": float(ks.statistic),
                      "p_value": float(ks.pvalue)}
    best = min(fits, key=lambda k: fits[k]["ks"])
    return {"family": best, "params": fits[best]["params"], "ks": fits[best]["ks"],
            # a mixture (e.g. 1 s and 7 s outages) fits no family: sample the data themselves
            "sampler": best if fits[best]["ks"] <= MAX_FIT_KS else "empirical",
            "alternatives": fits, "samples": int(len(x)),
            "median": float(np.median(x)), "p95": float(np.percentile(x, 95)),
            "quantiles": [float(q) for q in np.quantile(x, QUANTILES)]}


def _fit_censored(x: np.ndarray, cens: np.ndarray) -> dict[str, Any]:
    data = stats.CensoredData(uncensored=x[~cens], right=x[cens])
    km = censored_stats.km_cdf(x, cens)
    seen = np.unique(x[x <= x[~cens].max()]) if (~cens).any() else np.unique(x)
    fits = {}
    for name, family in FAMILIES.items():
        params = family.fit(data, floc=0)
        gap = np.abs(km.evaluate(seen) - family.cdf(seen, *params))
        fits[name] = {"params": [float(p) for p in params], "ks": float(gap.max())}
    best = min(fits, key=lambda k: fits[k]["ks"])
    top = float(km.probabilities.max())
    tail = FAMILIES[best](*fits[best]["params"])
    q = [float(km.quantiles[np.flatnonzero(km.probabilities >= lv - 1e-12)[0]]) if lv <= top
         else float(max(tail.ppf(min(lv, 1 - 1e-9)), x.max())) for lv in QUANTILES]
    pct = censored_stats.km_percentiles(x, cens)
    return {"family": best, "params": fits[best]["params"], "ks": fits[best]["ks"],
            "sampler": best if fits[best]["ks"] <= MAX_FIT_KS else "empirical",
            "alternatives": fits, "samples": int(len(x)), "censored": int(cens.sum()),
            "median": pct["p50"], "p95": pct["p95"], "quantiles": q,
            "tail_from": best if top < 1.0 else None}


def empirical(x: list[float] | np.ndarray) -> dict[str, Any] | None:
    """A non-parametric fit (101 quantiles), for small offsets no family describes well."""
    x = np.asarray(x, dtype=float)
    if not len(x):
        return None
    return {"family": "empirical", "samples": int(len(x)), "median": float(np.median(x)),
            "p95": float(np.percentile(x, 95)),
            "quantiles": [float(q) for q in np.quantile(x, QUANTILES)]}



def calibrate(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        mode = mode_of(r)
        if mode is not None:
            by_mode.setdefault(mode, []).append(r)
    if not by_mode:
        raise CalibrationError("no run of a node fault (kill, pause, stop, partition)")
    modes = {}
    for mode, runs in sorted(by_mode.items()):
        outages = np.concatenate([target_outages(r) for r in runs])
        if len(outages) + sum(len(target_censored(r)) for r in runs) < MIN_SAMPLES:
            raise CalibrationError(f"{mode}: {len(outages)} client outages in {len(runs)} run(s); "
                                   f"at least {MIN_SAMPLES} are needed to fit (run --repeat more)")
        reconnects = sum(r["sessions"]["reconnects"] for r in runs)
        present = sum(r["sessions"]["present"] for r in runs)
        modes[mode] = {
            "client_outage_s": _outage_fit(runs, outages),
            "session_present_ratio": present / reconnects if reconnects else None,
            "acknowledged_lost_per_event": float(np.mean([r["messages"]["acknowledged_lost"]
                                                          for r in runs])),
            "duplicates_per_event": float(np.mean([r["messages"]["duplicated"] for r in runs])),
            "lab_subscribers_per_node": float(np.mean([r["meta"]["clients"]["subscribers"]
                                                       / r["meta"].get("nodes", 3) for r in runs])),
            # the failure detector's tick in these runs (None: a broker without one)
            "lab_dist_net_ticktime_s": _tick(runs),
            "runs": len(runs),
            "mechanism": _mechanism(runs),
            "collateral": _collateral(runs),
        }
    timeouts = _probe_timeouts([r for runs in by_mode.values() for r in runs])
    # How long a survivor holds a CONNECT is the store's own timeout, whatever failed: a mode whose
    # clients never met the window (a crash's first retry goes to the dead node) takes the others'.
    held = [w for m in modes.values() for w in m["mechanism"]["session_store"]["held_s"]]
    for m in modes.values():
        m["mechanism"]["probe_timeout_measured_s"] = float(np.mean(timeouts)) if timeouts else None
        store = m["mechanism"]["session_store"]
        if not store["held_s"] and store["wait_s"] is not None and held:
            store["wait_s"], store["wait_from"] = float(np.median(held)), "other modes"
        del store["held_s"]
    # Sessions released when the cluster's failure detector declares a silent node down: the
    # same detector for a hang and a partition, so their windows are one sample
    silent = {mode: m for mode, m in modes.items() if mode in ("hang", "partition")
              and m["mechanism"]["session_store"]["released_by"] == "failure_detector"}
    pooled = sorted(w for m in silent.values()
                    for w in m["mechanism"]["session_store"]["down_s"]["leader_lost"])
    # ... and the same survivors refuse CONNECTs the same way after either fault
    shares = [x for m in silent.values() for x in m["mechanism"]["session_store"]["refuse_p_per_run"]]
    chains = np.sum([m["mechanism"]["session_store"]["refusal_chains"] for m in silent.values()],
                    axis=0) if silent else np.zeros(4)
    for m in silent.values():
        store = m["mechanism"]["session_store"]
        store["release_pooled_s"] = pooled
        store["refuse_p_per_run"] = shares
        if chains[2:].sum():
            store["refuse_again_p"] = float(chains[3] / chains[2:].sum())
    for mode, m in modes.items():
        m["acknowledged_lost_residual_per_event"] = _loss_residual(by_mode[mode], m)
    metas = [r["meta"] for r in results]
    return {
        "name": name,
        "provenance": {
            "broker": sorted({m["broker"] for m in metas}),
            "standin": any(m.get("standin") for m in metas),
            "lb": metas[0]["lb"], "clients": metas[0]["clients"],
            "sessions": sorted({m["sessions"] for m in metas}),
            "scenario_files": sorted({m["scenario_file"] for m in metas}),
            "result_files": [m["source_file"] for m in metas],
            "lab_dates": sorted({m["date"] for m in metas}),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "tool": f"mqtt-ha-twin {__version__}",
        },
        "modes": modes,
    }


def _tick(runs: list[dict[str, Any]]) -> float | None:
    ticks = {failure_detector_tick_s(r) for r in runs}
    ticks.discard(None)
    return float(ticks.pop()) if len(ticks) == 1 else None


def _loss_residual(runs: list[dict[str, Any]], fitted: dict[str, Any], reps: int = 50
                   ) -> float | None:
    """Acknowledged loss per event that the model's own mechanism (subscribers whose session is
    gone miss what is published while they are out) does not explain: the lab's messages queued
    or in flight on the failed node, or routed to a session the broker re-created empty. The
    replay adds it (the long-run pools take the lab's whole loss per event). None where a run
    does not say enough to be replayed."""
    if not all("timings" in r["meta"] and "lb" in r["meta"] for r in runs):
        return None
    rng = np.random.default_rng(0)
    own = [replay(r["meta"], {**fitted, "acknowledged_lost_residual_per_event": 0.0}, rng, reps,
                  owner_lost(r), lb_down_at(r), initial_counts=initial_counts(r),
                  horizon_s=measured_s(r), first_retry_s=first_retry_s(r))["acknowledged_lost"]
           for r in runs]
    return float(np.mean([r["messages"]["acknowledged_lost"] for r in runs]) - np.mean(own))


def _probe_timeouts(runs: list[dict[str, Any]]) -> list[float]:
    """How long past the model's U(0, interval) + (fall - 1) x interval the LB took to mark the
    failed node down, per run (less half the lab's 0.2 s polling of the LB)."""
    out = []
    for r in runs:
        o = origin(r)
        down = o.get("lb_target_down_s") if o else None
        if down is not None:
            lb = r["meta"]["lb"]
            out.append(down - LB_POLL_S / 2 - lb["interval_s"] / 2 - (lb["fall"] - 1) * lb["interval_s"])
    return out


def _outage_fit(runs: list[dict[str, Any]], outages: np.ndarray, size: int = 2000
                ) -> dict[str, Any]:
    """The outages the long-run pools draw from. Where every run says whether its failed node led
    the session store, the runs are reweighted so that it did in 1 of `nodes` failures (leaders
    spread evenly), not as often as the calibration runs happened (or were chosen) to; a fixed
    seed keeps the file reproducible. Otherwise the outages as measured."""
    lost = [owner_lost(r) for r in runs]
    if any(x is None for x in lost) or all(lost) or not any(lost):
        cens = np.concatenate([target_censored(r) for r in runs])
        flags = np.arange(len(outages) + len(cens)) >= len(outages)
        return {**fit_positive(np.concatenate([outages, cens]), flags), "leader_lost_share": None}
    per_run = [target_outages(r) for r in runs]  # (reweighted draws: censored ones left out)
    share = 1.0 / float(np.mean([r["meta"].get("nodes", 3) for r in runs]))
    n_lost = sum(lost)
    weights = np.concatenate([np.full(len(x), (share / n_lost if was else (1 - share)
                                                / (len(runs) - n_lost)) / len(x))
                              for x, was in zip(per_run, lost, strict=True)])
    sample = np.random.default_rng(0).choice(np.concatenate(per_run), size=size,
                                             p=weights / weights.sum())
    left_out = sum(len(target_censored(r)) for r in runs)  # said, not hidden
    return {**fit_positive(sample), "samples": int(len(outages)), "leader_lost_share": share,
            **({"censored_left_out": left_out} if left_out else {})}


def _mechanism(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Timings the transient model takes as inputs, measured in the runs' histories."""
    origins = [o for o in map(origin, runs) if o]
    overhead: list[float] = []
    latency: list[float] = []
    hung_attempts: list[float] = []
    for r, o in zip(runs, map(origin, runs), strict=True):
        if not o:
            continue
        # Attempts the client gave up on: how long it really waits (its timer's granularity).
        wait = r["meta"]["clients"]["keepalive_s"]
        hung_attempts += [x for x in o.get("failed_attempt_s", []) if x >= CLIENT_GAVE_UP * wait]
        latency += o["connack_latency_s"]
        overhead += client_overhead_s(r)
    return {
        "runs_with_placement": len(origins),
        "session_store": session_store(runs),
        "connack_latency_s": empirical(latency),
        "reconnect_overhead_s": empirical(overhead),
        # a check of the lab's LB, as measured from all runs (see calibrate); the replay takes the
        # configured value, which a handful of runs can only estimate to +-0.1 s
        "probe_timeout_measured_s": None,
        "connack_wait_s": empirical(hung_attempts),
        **_timer_on_time(runs),
        "lb_target_down_s": [o.get("lb_target_down_s") for o in origins],
        "detection_s": empirical([x for o in origins for x in o["detection_s"]]),
    }



def _timer_on_time(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How often an attempt the client's timer started (after a timeout: on one of its ticks)
    timed out at the timeout itself, not a tick later: the share of such timeouts within half a
    tick of the keepalive. Runs with a tick per client only; absent where none timed out."""
    on_time = whole = 0
    for r, o in zip(runs, map(origin, runs), strict=True):
        tick = r["meta"].get("client_timer_tick_s")
        if not o or not tick or r["meta"].get("client_timer_phase") != "per_client":
            continue
        wait = r["meta"]["clients"]["keepalive_s"]
        by_client: dict[int, list[list]] = {}
        for a in o.get("target_attempts", []):
            if len(a) > 3:  # older summaries do not say whose attempt it was
                by_client.setdefault(a[3], []).append(a)
        for tries in by_client.values():
            timed_out = [not a[1] and (len(a) < 5 or a[4] is None) and a[2] >= CLIENT_GAVE_UP * wait
                         for a in tries]
            for k in range(1, len(tries)):
                if timed_out[k - 1] and timed_out[k]:
                    early = abs(tries[k][2] - wait) < tick / 2
                    on_time += early
                    whole += not early
    if not on_time + whole:
        return {}
    return {"timer_on_time_p": on_time / (on_time + whole), "timer_timeouts": on_time + whole}


def _collateral(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Outages of clients that were NOT on the failed node (the broker's own side effects, e.g.
    a replicated store losing its leader): the transient model has no mechanism for them, so they
    are carried as a measured fraction and distribution."""
    fractions, outages = [], []
    for r in runs:
        o = origin(r)
        if not o:
            continue
        c = r["meta"]["clients"]
        others = c["subscribers"] + c["publishers"] - o["target_clients"]
        fractions.append(len(o["collateral_outages"]) / others if others else 0.0)
        outages += o["collateral_outages"]
    return {"outages_per_other_client": float(np.mean(fractions)) if fractions else 0.0,
            "outage_s": empirical(outages)}


# ------------------------------------------------------------------------------ replay
