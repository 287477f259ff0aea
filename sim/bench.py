"""Benchmarks that print `name: value unit` lines (wall-clock figures measured in one run)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sim.montecarlo import replicate_longrun, run
from sim.spec import load_spec

REFERENCE = Path(__file__).resolve().parent.parent / "models" / "renata-reference.toml"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def benchmarks(reference: Path = REFERENCE, workers: int = 2) -> Iterator[tuple[str, float, str]]:
    spec = load_spec(reference)
    sim = spec.simulation.model_copy(update={"years": 1000, "replications": 20})
    spec = spec.model_copy(update={"simulation": sim})
    yield ("longrun_reference_1000y_x20_s",
           _timed(lambda: run(spec, workers=workers, worker=replicate_longrun, progress=False)),
           "s")
