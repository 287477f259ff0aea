"""Study speed figures (`twin bench --studies`): the what-if matrix swept cold and from the cache."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sim.spec import load_spec
from studies.sweep import sweep

REFERENCE = Path(__file__).resolve().parent.parent / "models" / "renata-reference.toml"
WHAT_IF_GRID = {  # 3 x 2 x 2 x 2 = 24 designs
    "cluster.nodes": [3, 4, 5],
    "lb.probe.protocol": ["tcp", "http"],
    "lb.probe.on_down": ["continue", "reset"],
    "cluster.sessions": ["memory", "durable"],
}


PLAN_FLEETS = [100_000, 1_000_000, 10_000_000, 100_000_000]


def study_benchmarks(workers: int = 2) -> Iterator[tuple[str, float, str]]:
    spec = load_spec(REFERENCE)  # at the reference's own settings (1,000 years x 20)
    yield "capacity_plan_4_fleets_3_vms_s", capacity_plan_seconds(spec), "s"
    old = {k: os.environ.get(k) for k in ("TWIN_CACHE", "TWIN_POOL_CACHE")}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TWIN_CACHE"] = tmp
        os.environ.pop("TWIN_POOL_CACHE", None)
        try:
            for name in ("whatif_sweep_24_designs_s", "whatif_sweep_24_designs_cached_s"):
                start = time.perf_counter()
                sweep(spec, WHAT_IF_GRID, workers=workers)
                yield name, time.perf_counter() - start, "s"
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def capacity_plan_seconds(spec) -> float:
    """`twin capacity --vm` of the reference: 4 fleet sizes x 3 VM sizes, up to 16 nodes."""
    from studies.variants import apply
    from studies.vm_plan import DEFAULT_VMS, plan

    spec = apply(spec, {"cluster.overload_connections": None}, name=spec.meta.name)
    start = time.perf_counter()
    plan(spec, PLAN_FLEETS, list(DEFAULT_VMS), max_nodes=16)
    return time.perf_counter() - start
