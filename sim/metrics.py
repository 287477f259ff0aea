"""Aggregate replications into the JSON contract of DESIGN §2 (pure functions of results)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from scipy import stats

from sim import __version__
from sim.longrun import ReplicationResult
from sim.spec import YEAR_S, Spec

MINUTES_PER_YEAR = YEAR_S / 60


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mean and Student-t confidence interval over independent replications."""
    x = np.asarray(x, dtype=float)
    mean = float(x.mean())
    if len(x) < 2 or np.all(x == x[0]):
        return mean, (mean, mean)
    lo, hi = stats.t.interval(level, len(x) - 1, loc=mean, scale=stats.sem(x))
    return mean, (float(lo), float(hi))


def _stat(x: np.ndarray) -> dict[str, Any]:
    mean, (lo, hi) = mean_ci(x)
    return {"mean": mean, "ci95": [lo, hi]}


MIN_EVENTS = 10  # fewer outages than this: a t-interval over replications is not evidence


def exposure_interval(events: int, years: float, mean_outage_s: float) -> tuple[float, float]:
    """95 % interval on availability from the exposure: an exact Poisson interval on the outage
    rate (k events in `years`) times the mean outage duration."""
    lam_hi = stats.chi2.ppf(0.975, 2 * events + 2) / 2 / years
    lam_lo = stats.chi2.ppf(0.025, 2 * events) / 2 / years if events else 0.0
    return (1.0 - lam_hi * mean_outage_s / YEAR_S, 1.0 - lam_lo * mean_outage_s / YEAR_S)


def worst_mean_repair_s(spec: Spec) -> float:
    """The slowest mean repair of any failure mode: the outage length assumed when none was seen."""
    modes = list(spec.node.failure.modes().values())
    modes += [spec.lb.failure] if spec.lb and spec.lb.failure else []
    modes += [r.outage for r in spec.regions if r.outage]
    return max((m.mttr_s() for m in modes), default=0.0)


def _honest(stat: dict[str, Any], events: int, years: float, mean_outage_s: float,
            what: str) -> dict[str, Any]:
    """The t-interval when enough outages back it; else the exposure interval (never zero width
    when nothing was seen). Says which."""
    lo, hi = stat["ci95"]
    if events >= MIN_EVENTS and hi > lo:
        return {**stat, "interval": f"Student t over replications ({events} {what})"}
    elo, ehi = exposure_interval(events, years, mean_outage_s)
    return {**stat, "ci95": [max(0.0, elo), min(1.0, max(ehi, stat["mean"]))],
            "interval": f"Poisson exposure bound: {events} {what} in {years:g} simulated years, "
                        f"x outage {mean_outage_s:.0f} s (the larger of their mean and the "
                        "slowest mean repair: few outages do not measure their length)"}


def _percentiles(x: list[float] | np.ndarray) -> dict[str, Any]:
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(x.max()),
            "count": int(x.size)}


def availability_per_replication(results: list[ReplicationResult]) -> np.ndarray:
    return np.array([1.0 - r.downtime_s_per_year.sum() / r.horizon_s for r in results])


def backup_figures(spec: Spec) -> dict[str, Any]:
    """What backups and a scripted restore give, in closed form: a restore at a uniformly random
    moment loses the configuration changes since the last backup (at most one interval, p99 0.99
    of it); the restore takes its own distribution's quantiles."""
    dr = spec.dr
    out: dict[str, Any] = {}
    if dr.backup_interval_hours is not None:
        out["config_rpo_minutes_max"] = dr.backup_interval_hours * 60
        out["config_rpo_minutes_p99"] = 0.99 * dr.backup_interval_hours * 60
    if dr.restore is not None:
        d = dr.restore.frozen()
        out["restore_minutes"] = {"p50": float(d.ppf(0.5)) / 60, "p99": float(d.ppf(0.99)) / 60}
    return out


def summarise(spec: Spec, results: list[ReplicationResult], stopped_by: str = "replications"
              ) -> dict[str, Any]:
    years_total = sum(r.horizon_s for r in results) / YEAR_S
    service = availability_per_replication(results)
    client = np.array([1.0 - r.client_down_s / r.horizon_s if r.client_down_s is not None
                       else s for r, s in zip(results, service, strict=True)])
    message = np.array([r.message_delivery if r.message_delivery is not None else s
                        for r, s in zip(results, service, strict=True)])
    per_year_min = np.concatenate([r.downtime_s_per_year for r in results]) / 60
    mean_per_rep = np.array([r.downtime_s_per_year.mean() / 60 for r in results])
    dmean, (dlo, dhi) = mean_ci(mean_per_rep)
    downtime: dict[str, Any] = {
        "mean": dmean, "ci95": [dlo, dhi],
        "p50": float(np.percentile(per_year_min, 50)),
        "p95": float(np.percentile(per_year_min, 95)),
        "p99": float(np.percentile(per_year_min, 99)),
    }
    target = spec.targets
    if target.availability is not None:
        budget = (1 - target.availability) * MINUTES_PER_YEAR
        downtime["budget_minutes"] = budget
        downtime["p_exceed_budget"] = float(np.mean(per_year_min > budget))

    causes = sorted({c for r in results for c in r.downtime_s_by_cause})
    by_cause = {c: sum(r.downtime_s_by_cause.get(c, 0.0) for r in results) / 60 / years_total
                for c in causes}
    outage_causes = sorted({o[0] for r in results for o in r.outages})
    outages = {c: _percentiles([o[1] for r in results for o in r.outages if o[0] == c])
               for c in outage_causes}
    all_outages = [o[1] for r in results for o in r.outages]
    rpo = [x for r in results for x in r.rpo_s]
    event_causes = sorted({c for r in results for c in r.events_by_cause})
    events = {c: sum(r.events_by_cause.get(c, 0) for r in results) / years_total
              for c in event_causes}
    failover = _merge_failover(results) or outages
    weighted = [o[1] * o[2] for r in results for o in r.outages]
    n_out = len(weighted)
    mean_out = max(float(np.mean(weighted)) if weighted else 0.0, worst_mean_repair_s(spec))
    n_node = sum(n for c, n in events.items() if c.startswith("node.")) * years_total
    n_node = int(round(n_node))
    mean_node = worst_mean_repair_s(spec)

    out: dict[str, Any] = {
        "tool": {"name": "mqtt-ha-twin", "version": __version__},
        "seed": spec.simulation.seed,
        "replications": len(results),
        "stopped_by": stopped_by,
        "years_per_replication": spec.simulation.years,
        "start": spec.simulation.start,
        "estimator": {"service": "plain", "method": "independent replications"},
        "availability": {
            "service": _honest(_stat(service), n_out, years_total, mean_out, "service outages"),
            "client_weighted": _honest(_stat(client), n_node, years_total, mean_node,
                                       "node events"),
            "message": _honest(_stat(message), n_node, years_total, mean_node, "node events"),
        },
        "downtime_minutes_per_year": downtime,
        "downtime_minutes_per_year_by_cause": by_cause,
        "events_per_year": events,
        "service_outage_seconds": {"all": _percentiles(all_outages), **outages},
        "failover_seconds": failover,
        "rto_seconds": _percentiles(all_outages),
        "rpo_seconds": _percentiles(rpo),
        "dr_failovers_per_year": sum(r.dr_failovers for r in results) / years_total,
    }
    if spec.dr is not None and (spec.dr.backup_interval_hours is not None or spec.dr.restore):
        out["backup"] = backup_figures(spec)
    extra = _merge_extra(results)
    if extra:
        out["clients"] = extra
        client_causes = sorted({c for r in results for c in r.client_down_s_by_cause})
        out["client_downtime_minutes_per_year_by_cause"] = {
            c: sum(r.client_down_s_by_cause.get(c, 0.0) for r in results) / 60 / years_total
            for c in client_causes}
        from sim.clientimpact import capacity_figures

        out["capacity"] = capacity_figures(spec)
    if spec.calibration is not None:
        data = json.loads(open(spec.calibration.file).read())
        out["calibration"] = {"file": spec.calibration.file, "modes": sorted(data["modes"]),
                              "broker": data["provenance"]["broker"],
                              "standin": data["provenance"]["standin"]}
    out["targets"] = judge(spec, out)
    out["spec"] = spec.model_dump(mode="json")
    return out


def _merge_failover(results: list[ReplicationResult]) -> dict[str, Any]:
    """Client-seen failover seconds per failure mode (from the transient model, if it ran)."""
    modes = sorted({m for r in results for m in r.client_failover_s})
    return {m: _percentiles(np.concatenate([r.client_failover_s[m] for r in results
                                            if m in r.client_failover_s])) for m in modes}


def _merge_extra(results: list[ReplicationResult]) -> dict[str, Any]:
    if not results or not results[0].client_extra:
        return {}
    keys = results[0].client_extra.keys()
    return {k: _stat(np.array([r.client_extra[k] for r in results])) for k in keys}


def judge(spec: Spec, out: dict[str, Any]) -> dict[str, Any]:
    """Pass / fail / not shown per target: an availability passes only when its whole 95 %
    interval clears the target, fails when the whole interval misses it, and is otherwise not
    shown, with the simulated years it would take. RTO and RPO are judged on the 99th percentile
    of events."""
    t = spec.targets
    verdicts: dict[str, Any] = {}
    if t.availability is not None:
        years = out["replications"] * out["years_per_replication"]
        for kind in ("service", "client_weighted", "message"):
            a = out["availability"][kind]
            lo, hi = a["ci95"]
            verdict = "pass" if lo >= t.availability else "fail" if hi < t.availability \
                else "not_shown"
            v = {"target": t.availability, "value": a["mean"], "ci95": a["ci95"],
                 "pass": verdict == "pass", "verdict": verdict, "interval": a.get("interval"),
                 "basis": "the whole 95 % interval must clear the target"}
            if verdict == "not_shown":
                v["more_years"] = _years_to_show(a["mean"], lo, hi, t.availability, years)
            verdicts[f"availability.{kind}"] = v
    if t.rto_minutes is not None:
        verdicts["rto_minutes"] = _p99_verdict(t.rto_minutes, out["rto_seconds"],
                                               "p99 of service outage durations")
    if t.rpo_minutes is not None:
        verdicts["rpo_minutes"] = _p99_verdict(t.rpo_minutes, out["rpo_seconds"],
                                               "p99 of data age lost per DR fail-over")
    return verdicts


def _years_to_show(mean: float, lo: float, hi: float, target: float, years: float
                   ) -> float | None:
    """Simulated years to add before the interval can clear the target on the side its mean is
    on, if the mean holds (the half-width shrinks as 1/sqrt(years)); None when mean == target."""
    gap, half = abs(mean - target), (mean - lo) if mean >= target else (hi - mean)
    if gap == 0:
        return None
    return float(years * max(0.0, (half / gap) ** 2 - 1.0))


def _p99_verdict(target_minutes: float, seconds: dict[str, Any], basis: str) -> dict[str, Any]:
    """Pass when the 99th percentile of the events is within the target (none: not exercised)."""
    p99 = seconds["p99"]
    return {"target": target_minutes, "value": None if p99 is None else p99 / 60,
            "pass": p99 is None or p99 / 60 <= target_minutes,
            "basis": basis if p99 is not None else "no such event happened: not exercised"}


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True) + "\n"


def use_rare_estimate(spec: Spec, summary: dict[str, Any], est: Any) -> dict[str, Any]:
    """Service availability (and downtime per year) from the rare-event estimator (sim/rare.py);
    without clients the client-weighted and message figures are the service's, so they follow."""
    lo_u, hi_u = est.ci95
    figure = {"mean": 1.0 - est.unavailability, "ci95": [1.0 - hi_u, 1.0 - lo_u],
              "interval": est.method}
    kinds = ["service"] if spec.clients.count else ["service", "client_weighted", "message"]
    for kind in kinds:
        summary["availability"][kind] = dict(figure)
    d = summary["downtime_minutes_per_year"]
    d["mean"], d["ci95"] = est.unavailability * MINUTES_PER_YEAR, [lo_u * MINUTES_PER_YEAR,
                                                                     hi_u * MINUTES_PER_YEAR]
    summary["estimator"] = {"service": "rare", "method": est.method, "seconds": est.seconds,
                            "relative_half_width": est.relative_half_width}
    summary["targets"] = judge(spec, summary)
    for kind in kinds:
        t = summary["targets"].get(f"availability.{kind}")
        if t and t["verdict"] == "not_shown":  # more years of plain MC is not the remedy here
            t["more_years"] = None
            t["hint"] = "a smaller --rare-precision narrows the interval"
    return summary


def plain_relative_half_width(summary: dict[str, Any]) -> float:
    """The service unavailability's 95 % half-width relative to it (inf when nothing failed)."""
    a = summary["availability"]["service"]
    u = 1.0 - a["mean"]
    return float("inf") if u <= 0 else (a["ci95"][1] - a["ci95"][0]) / 2 / u
