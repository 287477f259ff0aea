"""A load run's summary: a pure function of its files (meta.json, nodes.jsonl, gen-*.jsonl).

Each step is split into its ramp (connections being opened) and its steady window (from the end
of the ramp + SETTLE_S to the end of the step). Per node and window: CPU cores (cgroup CPU seconds
over the window), memory (mean), the broker's counters (connections, subscriptions: mean;
messages in / out: rate) and connects per second (net new connections). These points are what
`calibration.load_costs` fits. A run whose generator fell behind is invalid (LOAD_LIMITS).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from lab.history import read_history

SETTLE_S = 3.0
# The generator saturated: a process busier than this share of a core, or more than this share
# of its messages sent later than the generator's OVERRUN_S, or fewer clients connected than
# planned in a steady window.
LOAD_LIMITS = {"generator_cpu_share": 0.9, "overrun_share": 0.01, "connected_share": 0.98}


def _rate(ts: np.ndarray, vs: np.ndarray, t0: float, t1: float) -> float | None:
    inside = (ts >= t0) & (ts <= t1)
    if inside.sum() < 2:
        return None
    t, v = ts[inside], vs[inside]
    return float((v[-1] - v[0]) / (t[-1] - t[0])) if t[-1] > t[0] else None


def _mean(ts: np.ndarray, vs: np.ndarray, t0: float, t1: float) -> float | None:
    inside = (ts >= t0) & (ts <= t1)
    return float(np.mean(vs[inside])) if inside.any() else None


def _pcts_us(h: HdrHistogram) -> dict[str, float | None]:
    if h.get_total_count() == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    return {"p50": h.get_value_at_percentile(50) / 1e6, "p95": h.get_value_at_percentile(95) / 1e6,
            "p99": h.get_value_at_percentile(99) / 1e6, "max": h.get_max_value() / 1e6,
            "count": h.get_total_count()}


def windows(meta: dict[str, Any], start: float) -> list[dict[str, Any]]:
    """(step, kind, t0, t1) of each ramp and steady window, in Unix seconds."""
    out, prev = [], 0
    for k, st in enumerate(meta["steps"]):
        total = st["subscribers"] + st["publishers"] + st["offline"]
        ramp = max(0, total - prev) / meta["connect_rate_per_s"]
        prev = max(prev, total)
        t0 = start + k * meta["step_s"]
        t1 = t0 + meta["step_s"]
        if ramp > 0:
            out.append({"step": k, "window": "ramp", "t0": t0, "t1": t0 + ramp})
        out.append({"step": k, "window": "steady", "t0": t0 + ramp + SETTLE_S, "t1": t1 - 0.5})
    return out


def summarize(run_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = meta or json.loads((run_dir / "meta.json").read_text())
    nodes = read_history(run_dir / "nodes.jsonl") if (run_dir / "nodes.jsonl").exists() else []
    gens = {int(p.stem.split("-")[1]): read_history(p) for p in sorted(run_dir.glob("gen-*.jsonl"))}
    steps = [r for g in gens.values() for r in g if r["ev"] == "step" and r["step"] == 0]
    start = min((r["t"] for r in steps), default=0.0)
    wins = windows(meta, start)
    invalid: list[str] = []

    # -- the generators ----------------------------------------------------------------------
    hist = {k: HdrHistogram(1, 120_000_000, 2) for k in ("connack_us", "ack_us", "delivery_us")}
    gen_windows = []
    totals = defaultdict(int)
    for g, records in gens.items():
        samples = [r for r in records if r["ev"] == "sample"]
        for r in records:
            if r["ev"] == "histograms":
                for k in hist:
                    hist[k].add(HdrHistogram.decode(r[k]))
        if not samples:
            invalid.append(f"generator {g} wrote no sample")
            continue
        for key in ("connects", "connack_failed", "disconnects", "sent", "acked", "recv", "overrun",
                    "publish_errors"):
            totals[key] += samples[-1][key]
        ts = np.array([r["t"] for r in samples])
        cpu = np.array([r["cpu_s"] for r in samples])
        for w in wins:
            share = _rate(ts, cpu, w["t0"], w["t1"])
            gen_windows.append({"generator": g, **w, "cpu_share": share})
            if share is not None and share > LOAD_LIMITS["generator_cpu_share"]:
                invalid.append(f"generator {g} used {share:.0%} of a core in step {w['step']} "
                               f"({w['window']}): it, not the broker, may have been the limit")
    if totals["sent"] and totals["overrun"] > LOAD_LIMITS["overrun_share"] * totals["sent"]:
        invalid.append(f"{totals['overrun']} of {totals['sent']} messages sent behind schedule "
                       f"(more than {LOAD_LIMITS['overrun_share']:.0%}): the generator saturated")

    # the whole lab's message rates as the generators saw them (sent = in, received = out)
    gen_rates: dict[tuple[int, str], dict[str, float]] = {}
    for w in wins:
        rin = rout = 0.0
        for records in gens.values():
            smp = [r for r in records if r["ev"] == "sample"]
            ts = np.array([r["t"] for r in smp])
            rin += _rate(ts, np.array([r["sent"] for r in smp]), w["t0"], w["t1"]) or 0.0
            rout += _rate(ts, np.array([r["recv"] for r in smp]), w["t0"], w["t1"]) or 0.0
        gen_rates[(w["step"], w["window"])] = {"in": rin, "out": rout}
    from_generator = meta.get("message_counts") == "generator"

    # -- the nodes ---------------------------------------------------------------------------
    by_node: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in nodes:
        if r["ev"] in ("node", "counters"):
            by_node[(r["node"], r["ev"])]["t"].append(r["t"])
            for k, v in r.items():
                if isinstance(v, int | float) and k not in ("t",):
                    by_node[(r["node"], r["ev"])][k].append(v)
    fault_t = next((r["t"] for r in nodes if r["ev"] == "fault"), None)
    points = []
    names = sorted({n for n, _ in by_node})
    for w in wins:
        planned = meta["steps"][w["step"]]
        for n in names:
            cg = {k: np.array(v) for k, v in by_node[(n, "node")].items()}
            ct = {k: np.array(v) for k, v in by_node[(n, "counters")].items()}
            if "t" not in cg or (fault_t is not None and w["t1"] > fault_t and
                                 not (cg["t"] > fault_t + 1).any()):
                continue  # the killed node after its kill
            p = {"node": n, **w, "cpu_cores": _rate(cg["t"], cg["cpu_s"], w["t0"], w["t1"]),
                 "anon_bytes": _mean(cg["t"], cg["anon_bytes"], w["t0"], w["t1"]),
                 "mem_bytes": _mean(cg["t"], cg["mem_bytes"], w["t0"], w["t1"])}
            if "t" in ct:
                p |= {"connections": _mean(ct["t"], ct["connections"], w["t0"], w["t1"]),
                      "subscriptions": _mean(ct["t"], ct["subscriptions"], w["t0"], w["t1"]),
                      "msgs_in_per_s": _rate(ct["t"], ct["msgs_in"], w["t0"], w["t1"]),
                      "msgs_out_per_s": _rate(ct["t"], ct["msgs_out"], w["t0"], w["t1"]),
                      "connects_per_s": max(0.0, _rate(ct["t"], ct["connections"], w["t0"],
                                                       w["t1"]) or 0.0)}
            up = len(names) - (1 if fault_t is not None and w["t0"] > fault_t else 0)
            p["offline_sessions"] = planned["offline"] / max(1, up)
            if from_generator:  # spread evenly: the clients are, round robin over the nodes
                rates = gen_rates[(w["step"], w["window"])]
                p["msgs_in_per_s"], p["msgs_out_per_s"] = rates["in"] / up, rates["out"] / up
            p["after_fault"] = fault_t is not None and w["t0"] > fault_t
            if p["cpu_cores"] is not None:
                points.append(p)

    for w in [w for w in wins if w["window"] == "steady"]:
        planned = meta["steps"][w["step"]]
        want = planned["subscribers"] + planned["publishers"]
        got = [r["connected"] for g in gens.values() for r in g
               if r["ev"] == "sample" and w["t0"] <= r["t"] <= w["t1"]]
        have = sum(got) / max(1, len(got)) * len(gens)
        if want and have < LOAD_LIMITS["connected_share"] * want and not (
                fault_t is not None and w["t0"] > fault_t):
            invalid.append(f"step {w['step']}: {have:.0f} of {want} clients connected on average "
                           "in its steady window")
    alarms = sorted({a for r in nodes if r["ev"] == "counters" for a in r.get("alarms") or []})
    return {"meta": meta, "valid": not invalid, "invalid": invalid,
            "generator": {**totals, "windows": gen_windows,
                          "connack_latency_s": _pcts_us(hist["connack_us"]),
                          "publish_ack_latency_s": _pcts_us(hist["ack_us"]),
                          "delivery_latency_s": _pcts_us(hist["delivery_us"])},
            "points": points, "alarms": alarms, "fault_t": fault_t, "start_t": start}
