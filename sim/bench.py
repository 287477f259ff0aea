"""Benchmarks that print `name: value unit` lines (wall-clock figures measured in one run)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from sim.montecarlo import replicate_longrun, run
from sim.spec import load_spec
from sim.transient import Scenario, simulate
from sim.transient_reference import simulate_reference

MODELS = Path(__file__).resolve().parent.parent / "models"
REFERENCE = MODELS / "renata-reference.toml"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rare_benchmarks(workers: int = 2) -> Iterator[tuple[str, float, str]]:
    """The rare-event estimator to its target precision, and plain replications' time for the same
    precision: their time per simulated year x the years they need (from the plain estimator's
    variance per regenerative cycle, which the rare-event run estimates too)."""
    from sim.rare import estimate

    for name, rel in (("1e-6", 0.1), ("1e-8", 0.2)):
        spec = load_spec(MODELS / "bench" / f"rare-{name}.toml")
        est = estimate(spec, precision=rel)
        yield f"rare_{name}_rel{rel * 100:.0f}_s", est.seconds, "s"
        years = 2000.0
        plain = spec.model_copy(update={"simulation": spec.simulation.model_copy(
            update={"years": years / workers, "replications": workers})})
        per_year = _timed(lambda p=plain: run(p, workers=workers, worker=replicate_longrun,
                                              progress=False)) / years
        need = est.plain_years_needed
        yield f"rare_{name}_plain_mc_same_precision_s", need * per_year, "s"
        yield f"rare_{name}_speedup_vs_plain_mc", need * per_year / est.seconds, "x"


def benchmarks(reference: Path = REFERENCE, workers: int = 2) -> Iterator[tuple[str, float, str]]:
    yield from rare_benchmarks(workers)
    spec = load_spec(reference)
    sim = spec.simulation.model_copy(update={"years": 1000, "replications": 20})
    spec = spec.model_copy(update={"simulation": sim})
    yield ("longrun_reference_1000y_x20_s",
           _timed(lambda: run(spec, workers=workers, worker=replicate_longrun, progress=False)),
           "s")
    rng = np.random.default_rng(1)
    # One transient of 1,000,000 clients in one region with the reference's client/LB policies.
    from sim.pools import scenario_for

    ref = scenario_for(spec, 0, "node.crash", spec.region_sizes()[0], 30.0)
    big = Scenario(**{**ref.__dict__, "clients": 1_000_000})
    t_vec = min(_timed(lambda: simulate(big, rng)) for _ in range(3))
    yield "transient_1m_clients_s", t_vec, "s"
    storm = Scenario(**{**big.__dict__, "max_conn_rate_per_s": 1000.0, "jitter": "full"})
    yield "transient_1m_clients_storm_1000_per_s_s", _timed(lambda: simulate(storm, rng)), "s"
    hang = Scenario(**{**big.__dict__, "mode": "hang", "return_after_s": 900.0})
    yield "transient_1m_clients_hang_tcp_probe_900s_s", _timed(lambda: simulate(hang, rng)), "s"
    # The same 1M-client transient with one SimPy process per client.
    t_ref = _timed(lambda: simulate_reference(big, rng))
    yield "per_client_model_1m_clients_s", t_ref, "s"
    yield "speedup_vs_per_client_model", t_ref / t_vec, "x"
    full = spec.model_copy(update={"clients": spec.clients.model_copy(update={"count": 100_000})})
    yield ("reference_100k_clients_1000y_x20_s",
           _timed(lambda: run(full, workers=workers, progress=False)), "s")
