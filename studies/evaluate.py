"""One design's result for a study, cached on disk.

The key is a hash of the resolved spec (seed included), the calibration file's bytes, and the
simulator's version and source, so a notebook re-runs in seconds and only a changed design runs
again. Per-replication figures are kept for paired differences (studies/compare.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import sim
from sim import history
from sim.longrun import ReplicationResult, longrun_inputs
from sim.metrics import MINUTES_PER_YEAR, availability_per_replication, summarise
from sim.montecarlo import run
from sim.spec import Spec

# Per-replication figures: what a paired difference is taken of.
PER_REPLICATION = ("service_availability", "client_weighted_availability", "message_availability",
                   "downtime_min_per_year", "share_of_years_over_budget", "qos1_lost_per_year",
                   "sessions_lost_per_year")


@dataclass
class DesignResult:
    name: str
    spec: Spec
    summary: dict[str, Any]
    per_replication: dict[str, np.ndarray]
    cached: bool = False


def cache_dir() -> Path:
    return Path(os.environ.get("TWIN_CACHE", "out/cache"))


def cache_key(spec: Spec) -> str:
    # the name and description do not change a result
    h = hashlib.sha256(json.dumps(spec.model_dump(mode="json", exclude={"meta"}), sort_keys=True).encode())
    if spec.calibration is not None:
        h.update(Path(spec.calibration.file).read_bytes())
    h.update(sim.source_fingerprint().encode())
    return h.hexdigest()[:24]


def per_replication(spec: Spec, results: list[ReplicationResult]) -> dict[str, np.ndarray]:
    service = availability_per_replication(results)
    budget = (1 - spec.targets.availability) * MINUTES_PER_YEAR if spec.targets.availability else None
    out = {
        "service_availability": service,
        "client_weighted_availability": np.array(
            [1 - r.client_down_s / r.horizon_s if r.client_down_s is not None else s
             for r, s in zip(results, service, strict=True)]),
        "message_availability": np.array(
            [r.message_delivery if r.message_delivery is not None else s
             for r, s in zip(results, service, strict=True)]),
        "downtime_min_per_year": np.array([r.downtime_s_per_year.mean() / 60 for r in results]),
        "share_of_years_over_budget": np.array(
            [np.mean(r.downtime_s_per_year / 60 > budget) if budget is not None else np.nan
             for r in results]),
    }
    for key in ("qos1_lost_per_year", "sessions_lost_per_year"):
        out[key] = np.array([r.client_extra.get(key, 0.0) for r in results])
    return out


def evaluate_all(specs: list[Spec], workers: int | None = None, use_cache: bool = True,
                 on_done: Callable[[DesignResult], None] | None = None) -> list[DesignResult]:
    """Several designs, in order; those that share their long run with another (probe, LB,
    sessions, clients differ: sim/history.py) record it once and replay it."""
    keys = [longrun_inputs(s) for s in specs]
    shared = Counter(keys)
    return [evaluate(s, workers=workers, use_cache=use_cache, progress=False, on_done=on_done,
                     share_history=shared[k] > 1) for s, k in zip(specs, keys, strict=True)]


def evaluate(spec: Spec, workers: int | None = None, use_cache: bool = True,
             progress: bool | None = None, on_done: Callable[[DesignResult], None] | None = None,
             share_history: bool = False) -> DesignResult:
    """Run (or load) one design: its full summary and its per-replication figures.
    `share_history`: record or replay its long-run histories in the cache (sim/history.py)."""
    # failover transients on disk too: designs differing only in failure rates share them
    os.environ.setdefault("TWIN_POOL_CACHE", str(cache_dir() / "pools"))
    path = cache_dir() / f"{cache_key(spec)}.json"
    if use_cache and path.is_file():
        data = json.loads(path.read_text())
        result = DesignResult(spec.meta.name, spec, data["summary"],
                              {k: np.asarray(v, dtype=float) for k, v in data["per_replication"].items()},
                              cached=True)
    else:
        before = os.environ.get(history.ENV)
        if share_history:
            os.environ[history.ENV] = str(cache_dir() / "longrun")
        try:
            outcome = run(spec, workers=workers, progress=progress)
        finally:
            if before is None:
                os.environ.pop(history.ENV, None)
            else:
                os.environ[history.ENV] = before
        summary = summarise(spec, outcome.results, outcome.stopped_by)
        result = DesignResult(spec.meta.name, spec, summary,
                              per_replication(spec, outcome.results))
        if use_cache:
            sim.write_atomic(path, json.dumps({"summary": summary, "per_replication": {
                k: v.tolist() for k, v in result.per_replication.items()}}).encode())
    if on_done is not None:
        on_done(result)
    return result
