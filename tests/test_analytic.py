"""The simulator against exact answers (sim/analytic.py, FACTS.md "Known answers")."""

from __future__ import annotations

import math

import pytest
from conftest import make_spec

from sim.analytic import AnalyticUnsupported, k_out_of_n, shared_crews, solve
from sim.metrics import summarise
from sim.montecarlo import replicate_longrun, run
from sim.spec import YEAR_S

H = 3600

CONFIGS = {
    "3 nodes exponential, 2 of 3": dict(),
    "crash exp + vm lognormal repair, 2 of 3": dict(node={"failure": {
        "crash": {"mtbf_hours": 200, "repair": {"dist": "exponential", "mean_s": 5 * H}},
        "vm": {"mtbf_hours": 300, "repair": {"dist": "lognormal", "median_s": 8 * H, "sigma": 0.8}},
    }}),
    "5 nodes weibull ttf + gamma repair, 3 of 5": dict(
        cluster={"nodes": 5, "min_nodes_up": 4},
        node={"failure": {"disk": {"ttf": {"dist": "weibull", "shape": 2.0, "mean_hours": 150},
                                   "repair": {"dist": "gamma", "shape": 3, "mean_hours": 12}}}}),
    "1 shared crew, birth-death, 3 of 3": dict(
        cluster={"nodes": 3, "min_nodes_up": 3, "repair_crews": 1}),
    "2 crews, 4 nodes, crew and crew-free modes": dict(
        cluster={"nodes": 4, "min_nodes_up": 3, "repair_crews": 2},
        node={"failure": {
            "crash": {"mtbf_hours": 150, "repair": {"dist": "exponential", "mean_s": 2 * H},
                      "crew": False},
            "vm": {"mtbf_hours": 120, "repair": {"dist": "exponential", "mean_hours": 15}}}}),
    "deterministic + empirical repairs, LB and region in series": dict(
        cluster={"nodes": 2, "min_nodes_up": 1},
        node={"failure": {
            "crash": {"mtbf_hours": 60, "repair": {"dist": "deterministic", "value_hours": 9}},
            "hang": {"ttf": {"dist": "lognormal", "median_hours": 80, "sigma": 0.5},
                     "repair": {"dist": "empirical", "samples_s": [3600, 7200, 36000]}}}},
        lb={"algorithm": "five_tuple", "failure": {
            "ttf": {"dist": "weibull", "shape": 1.5, "mean_hours": 400},
            "repair": {"dist": "lognormal", "median_hours": 6, "sigma": 0.4}}},
        regions=[{"name": "only", "outage": {"mtbf_hours": 900,
                                             "repair": {"dist": "gamma", "shape": 2, "mean_hours": 20}}}]),
    "correlated zone loss (2 of 3 nodes), 1 crew, LB": dict(
        cluster={"nodes": 3, "min_nodes_up": 2, "repair_crews": 1},
        correlated=[{"name": "zone", "mtbf_hours": 500, "nodes": 2,
                     "repair": {"dist": "exponential", "mean_hours": 3}}],
        lb={"algorithm": "round_robin", "failure": {
            "mtbf_hours": 2000, "repair": {"dist": "exponential", "mean_hours": 2}}}),
    "rolling maintenance every 3 days, 4 h per node (periodic CTMC)": dict(
        maintenance={"interval_days": 3, "per_node": {"dist": "deterministic", "value_hours": 4}}),
    "two regions active-active, exponential DR fail-over": dict(**(DR := dict(
        regions=[{"name": "a", "outage": {"mtbf_hours": 900,
                                          "repair": {"dist": "exponential", "mean_hours": 20}}},
                 {"name": "b", "nodes": 2, "weight": 0.5,
                  "outage": {"mtbf_hours": 1200, "repair": {"dist": "exponential", "mean_hours": 10}}}],
        dr={"mode": "active_active", "failover": {"dist": "exponential", "mean_s": 3600}}))),
    "two regions active-passive": dict(regions=DR["regions"], dr={**DR["dr"], "mode": "active_passive"}),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_simulation_agrees_with_analytic_within_ci(name: str) -> None:
    spec = make_spec(simulation={"years": 10, "replications": 16, "seed": 11}, **CONFIGS[name])
    exact = solve(spec).service
    outcome = run(spec, worker=replicate_longrun, workers=1, executor=None)
    a = summarise(spec, outcome.results)["availability"]["service"]
    lo, hi = a["ci95"]
    print(f"{name}: analytic {exact:.6f}, simulated {a['mean']:.6f} [{lo:.6f}, {hi:.6f}]")
    assert hi - lo < 0.01  # the CI is tight enough to mean something
    assert lo <= exact <= hi


def test_series_deterministic_known_answer() -> None:
    """FACTS.md: A fails every 100 h, B every 120 h, repair 10 h each, 300 h: 260/300 (both new
    at t = 0: the first 300 h after a rollout)."""
    spec = make_spec(
        simulation={"years": 300 * H / YEAR_S, "replications": 2, "seed": 1, "start": "new"},
        cluster={"nodes": 1, "min_nodes_up": 1},
        node={"failure": {"crash": {"ttf": {"dist": "deterministic", "value_hours": 100},
                                    "repair": {"dist": "deterministic", "value_hours": 10}}}},
        lb={"algorithm": "round_robin", "failure": {
            "ttf": {"dist": "deterministic", "value_hours": 120},
            "repair": {"dist": "deterministic", "value_hours": 10}}},
    )
    result = replicate_longrun(spec, 0)
    availability = 1 - result.downtime_s_per_year.sum() / result.horizon_s
    assert availability == pytest.approx(260 / 300, abs=1e-9)


def test_ctmc_equals_birth_death_closed_form() -> None:
    """One crew, one exponential mode: p_j proportional to n!/(n-j)! (lambda/mu)^j."""
    n, lam, mu = 4, 1 / 100, 1 / 10
    weights = [math.factorial(n) / math.factorial(n - j) * (lam / mu) ** j for j in range(n + 1)]
    p = [w / sum(weights) for w in weights]
    spec = make_spec(cluster={"nodes": n, "min_nodes_up": 2, "repair_crews": 1},
                     node={"failure": {"crash": {"mtbf_hours": 100, "repair": {
                         "dist": "exponential", "mean_hours": 10}}}})
    got = shared_crews(spec.node.failure.modes(), n, 2, 1)
    assert got == pytest.approx(sum(p[: n - 2 + 1]), rel=1e-12)


def test_k_out_of_n_formula() -> None:
    a = 0.9
    expected = sum(math.comb(3, i) * a**i * (1 - a) ** (3 - i) for i in range(2, 4))
    assert k_out_of_n(a, 3, 2) == pytest.approx(expected, rel=1e-12)


def test_chain_refuses_naming_the_key() -> None:
    spec = make_spec(correlated=[{"name": "zone", "mtbf_hours": 500, "nodes": 2,
                                  "repair": {"dist": "lognormal", "median_hours": 3, "sigma": 1}}])
    with pytest.raises(AnalyticUnsupported, match="correlated.zone.repair"):
        solve(spec)
    lognormal_stop = make_spec(maintenance={"interval_days": 3, "per_node": {
        "dist": "lognormal", "median_hours": 3, "sigma": 1}})
    with pytest.raises(AnalyticUnsupported, match="maintenance.per_node"):
        solve(lognormal_stop)
