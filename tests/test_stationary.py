"""The stationary start: simulate agrees with the exact steady state even for regular lifetimes
and short runs; `start = "new"` keeps the first-years-after-rollout view."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_spec
from scipy import stats

from sim.analytic import solve
from sim.metrics import availability_per_replication, mean_ci
from sim.montecarlo import replicate_longrun, run

H = 3600
DETERMINISTIC = {"failure": {"crash": {"ttf": {"dist": "deterministic", "value_hours": 10},
                                       "repair": {"dist": "deterministic", "value_hours": 1}}}}


def _availability(spec) -> tuple[float, tuple[float, float]]:
    results = run(spec, workers=1, worker=replicate_longrun, progress=False).results
    return mean_ci(availability_per_replication(results))


def test_deterministic_lifetimes_agree_with_analytic() -> None:
    """All nodes new at t = 0 with a 10 h lifetime fail together forever (90.91 %); at equilibrium
    ages they are independent, and 2 of 3 is 97.67 %."""
    spec = make_spec(simulation={"years": 0.1, "replications": 200, "seed": 3}, node=DETERMINISTIC)
    exact = solve(spec).service
    mean, (lo, hi) = _availability(spec)
    assert lo <= exact <= hi
    new = spec.model_copy(update={"simulation": spec.simulation.model_copy(update={"start": "new"})})
    mean_new, _ = _availability(new)
    assert mean_new == pytest.approx(10 / 11, abs=0.002)  # the lockstep the old default showed


@pytest.mark.parametrize("ttf", [
    {"mtbf_hours": 100},
    {"ttf": {"dist": "weibull", "shape": 3.0, "mean_hours": 100}},
    {"ttf": {"dist": "lognormal", "sigma": 0.3, "mean_hours": 100}},
])
def test_short_runs_are_not_biased_toward_all_up(ttf) -> None:
    """Replications of 8.8 h, shorter than a repair (50 h): from all-new the mean is far above
    the steady state; from the stationary start the exact value is inside the CI."""
    node = {"failure": {"crash": {**ttf, "repair": {"dist": "gamma", "shape": 2, "mean_hours": 50}}}}
    spec = make_spec(simulation={"years": 0.001, "replications": 3000, "seed": 11},
                     cluster={"nodes": 1, "min_nodes_up": 1}, node=node)
    exact = solve(spec).service  # 100 / 150
    mean, (lo, hi) = _availability(spec)
    assert lo <= exact <= hi, (mean, exact)
    new = spec.model_copy(update={"simulation": spec.simulation.model_copy(update={"start": "new"})})
    _, (lo_new, _) = _availability(new)
    assert lo_new > exact + 0.2


def test_lb_and_region_start_down_with_their_steady_state_probability() -> None:
    """The LB (in series) is found down at t = 0 in about MTTR / (MTTF + MTTR) of replications."""
    lb = {"algorithm": "round_robin", "failure": {
        "mtbf_hours": 30, "repair": {"dist": "exponential", "mean_hours": 10}}}
    spec = make_spec(simulation={"years": 1e-3, "replications": 2000, "seed": 5}, lb=lb,
                     node={"failure": {}})
    results = run(spec, workers=1, worker=replicate_longrun, progress=False).results
    down_at_start = np.array([1.0 if r.outages and r.downtime_s_per_year.sum() > 0 and
                              _down_at_zero(r) else 0.0 for r in results])
    p = 10 / 40
    k = int(down_at_start.sum())
    lo, hi = stats.binomtest(k, len(results)).proportion_ci(0.99)
    assert lo <= p <= hi


def _down_at_zero(result) -> bool:
    """An outage that lasted from t = 0 (the first entry's length is where it ended)."""
    cause, seconds = result.outages[0][:2]
    return cause == "lb" and seconds > 0 and result.events_by_cause.get("lb", 0) < len(result.outages)
