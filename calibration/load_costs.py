"""Load costs: what a connection, a subscription, an offline session and a message per second cost
a broker node, fitted from load-lab summaries (lab/load/summary.py points), with 95 % intervals.

One linear model per resource, fitted by least squares over the points of every run (per node,
per window):
    memory (anonymous bytes) = base + per connection + per subscription + per offline session
                               + per queued message
    CPU (cores)               = base + per message in/s + per message out/s + per connect/s
A regressor the runs did not vary (an offline-session count that is always 0) is left out and
reported as not measured. The interval of each cost is the OLS one (t quantile, residual
variance); the runs' repeats are in the points, so it covers their spread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import stats

MEMORY_TERMS = ("connections", "subscriptions", "offline_sessions", "queued_messages")
CPU_TERMS = ("msgs_in_per_s", "msgs_out_per_s", "connects_per_s")
MEMORY_BAR, CPU_BAR = 0.15, 0.25  # held-out points: relative error of the prediction
LEGS = ("msgs_in_per_s", "msgs_out_per_s")
COLLINEAR = 0.98  # correlation of in and out above which they are fitted as one cost per leg
UNITS = {"connections": "bytes per connection", "subscriptions": "bytes per subscription",
         "offline_sessions": "bytes per offline session", "base_memory": "bytes",
         "queued_messages": "bytes per queued message",
         "msgs_in_per_s": "core-seconds per message in", "msgs_out_per_s": "core-seconds per message out",
         "connects_per_s": "core-seconds per connect", "base_cpu": "cores"}


class LoadCalibrationError(ValueError):
    """A load fit that the data cannot support; one line."""


def points_of(results: list[dict[str, Any]], steady_only: bool = False) -> list[dict[str, Any]]:
    pts = [p | {"run": r["meta"].get("source_file", r["meta"]["scenario"])}
           for r in results for p in r["points"]
           if not p.get("after_fault") and (not steady_only or p["window"] == "steady")]
    return [p for p in pts if p.get("connections") is not None and p.get("cpu_cores") is not None]


def _fit(pts: list[dict[str, Any]], y_key: str, terms: tuple[str, ...], base: str) -> dict[str, Any]:
    y = np.array([p[y_key] for p in pts], dtype=float)
    cols = {t: np.array([p.get(t) or 0.0 for p in pts], dtype=float) for t in terms}
    used = [t for t in terms if np.ptp(cols[t]) > 0]
    legs = all(t in used for t in LEGS) and np.corrcoef(cols[LEGS[0]], cols[LEGS[1]])[0, 1] > COLLINEAR
    if legs:  # in and out moved together: one cost per message leg, given to both
        cols["legs"] = cols[LEGS[0]] + cols[LEGS[1]]
        used = ["legs" if t == LEGS[0] else t for t in used if t != LEGS[1]]
    inside: dict[str, str] = {}  # a term that moved with an earlier one: its cost is in that one's
    for t in list(used):
        for u in used[:used.index(t)]:
            if abs(np.corrcoef(cols[u], cols[t])[0, 1]) > COLLINEAR:
                inside[t] = u
                used.remove(t)
                break
    X = np.column_stack([np.ones(len(y))] + [cols[t] for t in used])
    dof = len(y) - X.shape[1]
    if dof < 2:
        raise LoadCalibrationError(f"{y_key}: {len(y)} points for {X.shape[1]} costs: need at least "
                                   f"{X.shape[1] + 2} (more steps or runs)")
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.pinv(X.T @ X)
    half = stats.t.ppf(0.975, dof) * np.sqrt(np.diag(cov))
    names = [base, *used]
    coef = {n: {"value": float(b), "ci95": [float(b - h), float(b + h)], "unit": UNITS[n]}
            for n, b, h in zip(names, beta, half, strict=True) if n != "legs"}
    if legs:
        k = names.index("legs")
        for t in LEGS:
            coef[t] = {"value": float(beta[k]), "ci95": [float(beta[k] - half[k]),
                                                         float(beta[k] + half[k])],
                       "unit": UNITS[t], "note": "in and out moved together in these runs: one "
                       "cost per message leg (in or out), not told apart"}
    for t in terms:
        if t in inside:
            coef[t] = {"value": None, "ci95": None, "unit": UNITS[t],
                       "note": f"moved with {inside[t]} in these runs: its cost is inside that one's"}
        elif t not in coef:
            coef[t] = {"value": None, "ci95": None, "unit": UNITS[t],
                       "note": "not varied in these runs: not measured"}
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {"y": y_key, "coefficients": coef, "points": len(y), "dof": dof,
            "r2": 1 - float(resid @ resid) / ss_tot if ss_tot else None,
            "residual_sd": float(np.sqrt(s2))}


def fit_load_costs(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    if not results:
        raise LoadCalibrationError("no load summaries given")
    memory = _fit(points_of(results, steady_only=True), "anon_bytes", MEMORY_TERMS, "base_memory")
    cpu = _fit(points_of(results), "cpu_cores", CPU_TERMS, "base_cpu")
    metas = [r["meta"] for r in results]
    return {"kind": "load_costs", "name": name, "memory": memory, "cpu": cpu,
            "provenance": {"source": "load lab", "broker": sorted({m["broker"] for m in metas}),
                           "standin": any(m["standin"] for m in metas),
                           "runs": [m.get("source_file", m["scenario"]) for m in metas],
                           "scenarios": sorted({m["scenario"] for m in metas}),
                           "qos": sorted({m["qos"] for m in metas}),
                           "payload_bytes": sorted({m["payload_bytes"] for m in metas}),
                           "node_limits": metas[0].get("node_limits"),
                           "generator": metas[0].get("generator"),
                           "made": datetime.now(UTC).isoformat(timespec="seconds")}}


def predict(model: dict[str, Any], point: dict[str, Any]) -> float:
    """A resource's demand at a point (missing or unmeasured costs count as 0)."""
    total = 0.0
    for n, c in model["coefficients"].items():
        if c["value"] is None:
            continue
        total += c["value"] if n.startswith("base_") else c["value"] * (point.get(n) or 0.0)
    return total


def validate_load(results: list[dict[str, Any]], costs: dict[str, Any]) -> dict[str, Any]:
    """Held-out load points: predicted vs measured memory (steady windows) and CPU (all)."""
    rows = []
    for kind, key, steady, bar in (("memory", "anon_bytes", True, MEMORY_BAR),
                                   ("cpu", "cpu_cores", False, CPU_BAR)):
        for p in points_of(results, steady_only=steady):
            pred = predict(costs[kind], p)
            rel = (pred - p[key]) / p[key] if p[key] else None
            rows.append({"resource": kind, "run": p["run"], "node": p["node"], "step": p["step"],
                         "window": p["window"], "measured": p[key], "predicted": pred,
                         "rel_error": rel, "within_bar": rel is not None and abs(rel) <= bar})
    summary = {}
    for kind, bar in (("memory", MEMORY_BAR), ("cpu", CPU_BAR)):
        mine = [r for r in rows if r["resource"] == kind]
        errs = np.array([abs(r["rel_error"]) for r in mine if r["rel_error"] is not None])
        summary[kind] = {"points": len(mine), "bar": bar,
                         "within_bar": sum(r["within_bar"] for r in mine),
                         "max_abs_rel_error": float(errs.max()) if len(errs) else None,
                         "median_abs_rel_error": float(np.median(errs)) if len(errs) else None}
    return {"rows": rows, "summary": summary}


def markdown(costs: dict[str, Any], report: dict[str, Any] | None = None) -> str:
    broker = ", ".join(costs["provenance"]["broker"])
    standin = costs["provenance"]["standin"] and "stand-in" not in broker
    runs = len(costs["provenance"]["runs"])
    out = [f"Load costs `{costs['name']}` ({broker}{', stand-in, not EMQX' if standin else ''}), "
           f"from {runs} valid run{'s' if runs != 1 else ''}:", "",
           "| resource | cost | value | 95 % interval | unit |", "|---|---|---|---|---|"]
    for kind in ("memory", "cpu"):
        for n, c in costs[kind]["coefficients"].items():
            moved = c["value"] is None and "moved with" in c.get("note", "")
            v = (f"in {c['note'].split()[2]}" if moved else "not measured") if c["value"] is None \
                else f"{c['value']:.4g}"
            ci = "" if c["ci95"] is None else f"{c['ci95'][0]:.4g} .. {c['ci95'][1]:.4g}"
            out.append(f"| {kind} | {n} | {v} | {ci} | {c['unit']} |")
    if report:
        out += ["", "| resource | held-out points | within the bar | bar | median / max abs error |",
                "|---|---|---|---|---|"]
        for kind, s in report["summary"].items():
            med = s["median_abs_rel_error"]
            mx = s["max_abs_rel_error"]
            err = "-" if med is None else f"{med * 100:.1f} % / {mx * 100:.1f} %"
            out.append(f"| {kind} | {s['points']} | {s['within_bar']} | {s['bar'] * 100:.0f} % | "
                       f"{err} |")
    return "\n".join(out)
