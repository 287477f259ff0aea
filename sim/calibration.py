"""Lab results into the model: fit what clients lived through, per failure mode, with scipy.

Reads the lab's summary files (schema: lab/SCHEMA.md; files are where sim and lab meet) and writes
models/calibration/NAME.json with provenance. `validate` replays each lab run in the transient
model and measures the twin's error against it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from sim import __version__

# lab fault -> the transient model's failure mode
FAULT_MODE = {"kill": "crash", "pause": "hang", "stop": "stop", "partition": "partition",
              "rolling_restart": "stop"}
FAMILIES = {"lognormal": stats.lognorm, "gamma": stats.gamma, "weibull": stats.weibull_min,
            "exponential": stats.expon}
MIN_SAMPLES = 20


class CalibrationError(ValueError):
    """Input that cannot be calibrated from; one line."""


def load_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Lab summary files (or folders of them), in a stable order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.glob("*.json"))
        elif p.exists():
            files.append(p)
        else:
            raise CalibrationError(f"{p}: no such file or folder")
    results = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise CalibrationError(f"{f}: not JSON ({err.msg})") from None
        if not isinstance(data, dict) or data.get("meta", {}).get("schema_version") != 1:
            raise CalibrationError(f"{f}: not a lab summary (meta.schema_version 1, lab/SCHEMA.md)")
        data["meta"]["source_file"] = str(f)
        results.append(data)
    if not results:
        raise CalibrationError("no lab summary files given")
    return results


def fit_positive(x: np.ndarray) -> dict[str, Any]:
    """Fit each family with location 0; choose the smallest KS statistic; report all."""
    x = np.maximum(np.asarray(x, dtype=float), 1e-3)
    fits = {}
    for name, family in FAMILIES.items():
        params = family.fit(x, floc=0)
        ks = stats.kstest(x, family.name, args=params)
        fits[name] = {"params": [float(p) for p in params], "ks": float(ks.statistic),
                      "p_value": float(ks.pvalue)}
    best = min(fits, key=lambda k: fits[k]["ks"])
    return {"family": best, "params": fits[best]["params"], "ks": fits[best]["ks"],
            "alternatives": fits, "samples": int(len(x)),
            "median": float(np.median(x)), "p95": float(np.percentile(x, 95))}


def frozen(fit: dict[str, Any]):
    return FAMILIES[fit["family"]](*fit["params"])


def calibrate(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        mode = FAULT_MODE.get(r["meta"]["fault"])
        if mode is not None:
            by_mode.setdefault(mode, []).append(r)
    if not by_mode:
        raise CalibrationError("no run of a node fault (kill, pause, stop, partition, rolling_restart)")
    modes = {}
    for mode, runs in sorted(by_mode.items()):
        outages = np.concatenate([np.asarray(r["client_outages"], float) for r in runs])
        if len(outages) < MIN_SAMPLES:
            raise CalibrationError(f"{mode}: {len(outages)} client outages in {len(runs)} run(s); "
                                   f"at least {MIN_SAMPLES} are needed to fit (run --repeat more)")
        reconnects = sum(r["sessions"]["reconnects"] for r in runs)
        present = sum(r["sessions"]["present"] for r in runs)
        modes[mode] = {
            "client_outage_s": fit_positive(outages),
            "session_present_ratio": present / reconnects if reconnects else None,
            "acknowledged_lost_per_event": float(np.mean([r["messages"]["acknowledged_lost"]
                                                          for r in runs])),
            "duplicates_per_event": float(np.mean([r["messages"]["duplicated"] for r in runs])),
            "lab_subscribers_per_node": float(np.mean([r["meta"]["clients"]["subscribers"] / 3
                                                       for r in runs])),
            "runs": len(runs),
        }
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


def _pcts(x: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def validate(results: list[dict[str, Any]], calibration: dict[str, Any], seed: int = 1
             ) -> list[dict[str, Any]]:
    """Per lab run: lab vs the calibrated twin (same clients), with KS distance and errors."""
    rows = []
    rng = np.random.default_rng(seed)
    for r in results:
        mode = FAULT_MODE.get(r["meta"]["fault"])
        fitted = calibration["modes"].get(mode) if mode else None
        lab = np.asarray(r["client_outages"], float)
        if fitted is None or len(lab) == 0:
            continue
        sim = frozen(fitted["client_outage_s"]).rvs(size=max(len(lab), 2000), random_state=rng)
        lp, sp = _pcts(lab), _pcts(sim)
        rows.append({
            "run": r["meta"]["source_file"], "mode": mode, "lab": lp, "sim": sp,
            "rel_error": {k: (sp[k] - lp[k]) / lp[k] if lp[k] else None for k in lp},
            "ks_distance": float(stats.ks_2samp(lab, sim).statistic),
            "session_present": {"lab": r["sessions"]["present_ratio"],
                                "sim": fitted["session_present_ratio"]},
            "acknowledged_lost": {"lab": r["messages"]["acknowledged_lost"],
                                  "sim": fitted["acknowledged_lost_per_event"]},
            "duplicated": {"lab": r["messages"]["duplicated"],
                           "sim": fitted["duplicates_per_event"]},
        })
    if not rows:
        raise CalibrationError("no run matches a calibrated failure mode")
    return rows
