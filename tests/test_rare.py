"""The rare-event estimator (sim/rare.py) against exact answers and against plain replications."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import make_spec

from sim.analytic import solve
from sim.metrics import (
    availability_per_replication,
    mean_ci,
    plain_relative_half_width,
    summarise,
    use_rare_estimate,
)
from sim.montecarlo import replicate_longrun, run
from sim.rare import RareUnsupported, check_supported, estimate
from sim.spec import load_spec


def rare_design(mtbf_hours: float, repair_hours: float, lb_repair_hours: float):
    """3 nodes, 2 must be up, one shared crew, an LB in series (as models/bench/)."""
    return make_spec(
        targets={"availability": 0.99999},
        simulation={"years": 10, "replications": 4, "seed": 1},
        cluster={"nodes": 3, "min_nodes_up": 2, "repair_crews": 1},
        node={"failure": {"crash": {"mtbf_hours": mtbf_hours,
                                    "repair": {"dist": "exponential", "mean_hours": repair_hours}}}},
        lb={"algorithm": "round_robin", "failure": {
            "mtbf_hours": 100_000, "repair": {"dist": "exponential", "mean_hours": lb_repair_hours}}})


BENCH = Path(__file__).resolve().parent.parent / "models" / "bench"
U_1E6 = load_spec(BENCH / "rare-1e-6.toml")  # exact 1.80e-6, the bench's designs
U_1E8 = load_spec(BENCH / "rare-1e-8.toml")  # exact 2.66e-8


@pytest.mark.parametrize("spec,precision", [(U_1E6, 0.1), (U_1E8, 0.2)])
def test_exact_answer_inside_the_interval(spec, precision) -> None:
    exact = 1 - solve(spec).service
    est = estimate(spec, precision=precision)
    assert est.relative_half_width <= precision
    assert est.ci95[0] <= exact <= est.ci95[1], (est, exact)


def test_general_repairs_agree_with_plain_replications() -> None:
    """Lognormal, Weibull and deterministic repairs (no closed form with a shared crew): the
    difference to plain replications is within both estimators' errors."""
    spec = make_spec(
        simulation={"years": 200, "replications": 20, "seed": 4},
        cluster={"nodes": 3, "min_nodes_up": 2, "repair_crews": 1},
        node={"failure": {
            "crash": {"mtbf_hours": 500, "repair": {"dist": "lognormal", "median_hours": 8,
                                                    "sigma": 1.0}},
            "vm": {"mtbf_hours": 2000, "crew": False,
                   "repair": {"dist": "weibull", "shape": 0.7, "mean_hours": 20}}}},
        lb={"algorithm": "round_robin", "failure": {
            "mtbf_hours": 20000, "repair": {"dist": "deterministic", "value_hours": 2}}})
    plain = 1 - availability_per_replication(
        run(spec, workers=2, worker=replicate_longrun, progress=False).results)
    mean, (lo, _) = mean_ci(plain)
    est = estimate(spec, precision=0.05)
    se = math.hypot((mean - lo) / 2.09, (est.ci95[1] - est.unavailability) / 1.96)
    assert abs(est.unavailability - mean) <= 3 * se, (est.unavailability, mean, se)


def test_refuses_what_it_does_not_model_naming_the_feature() -> None:
    weibull = make_spec(node={"failure": {"crash": {
        "ttf": {"dist": "weibull", "shape": 2, "mean_hours": 100},
        "repair": {"dist": "exponential", "mean_hours": 1}}}})
    with pytest.raises(RareUnsupported, match="node.failure.crash.ttf"):
        check_supported(weibull)
    maint = make_spec(maintenance={"interval_days": 30,
                                   "per_node": {"dist": "deterministic", "value_s": 600}})
    with pytest.raises(RareUnsupported, match="maintenance"):
        check_supported(maint)


def test_a_rare_failure_is_judged_on_the_rare_estimate() -> None:
    """A design failing five nines by a little (exact 1.6e-5) seen in 40 plain years (a few LB
    outages): the rare estimate is far tighter, says fail, and holds the exact value."""
    spec = rare_design(10_000, 5, 16)
    exact = 1 - solve(spec).service
    assert exact > 1e-5
    summary = summarise(spec, run(spec, workers=1, worker=replicate_longrun, progress=False).results)
    est = estimate(spec, precision=0.1)
    assert est.relative_half_width < plain_relative_half_width(summary) / 2
    out = use_rare_estimate(spec, summary, est)
    assert out["targets"]["availability.service"]["verdict"] == "fail"
    lo, hi = out["availability"]["service"]["ci95"]
    assert lo <= 1 - exact <= hi


@pytest.mark.slow
@pytest.mark.parametrize("spec,precision", [(U_1E6, 0.1), (U_1E8, 0.2)])
def test_coverage_over_100_seeds(spec, precision) -> None:
    """The 95 % interval holds the exact value in at least 90 of 100 seeds."""
    exact = 1 - solve(spec).service
    inside = 0
    for seed in range(100):
        lo, hi = estimate(spec, precision=precision, seed=seed).ci95
        inside += lo <= exact <= hi
    assert inside >= 90, inside
