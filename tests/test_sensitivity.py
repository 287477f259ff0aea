"""Sensitivity on a case with a known answer: 2 of 3 nodes, exponential times, where downtime
depends on MTTR / MTBF only (twin analytic is exact)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_spec
from scipy import optimize

from sim.analytic import k_out_of_n
from sim.metrics import MINUTES_PER_YEAR
from sim.spec import Uncertain
from studies.sensitivity import exact, simulated, sobol, tornado

SPEC = make_spec(targets={"availability": 0.99999},
                 node={"failure": {"crash": {"mtbf_hours": 3000,
                                             "repair": {"dist": "exponential", "mean_hours": 3}}}})
INPUTS = {"node.failure.crash.mtbf_hours": Uncertain(low=1000, high=10000, log=True, reason="test"),
          "node.failure.crash.repair.mean_hours": Uncertain(low=1, high=10, log=True, reason="test")}


def downtime(mtbf: float, mttr: float) -> float:
    return (1 - k_out_of_n(mtbf / (mtbf + mttr), 3, 2)) * MINUTES_PER_YEAR


def test_tornado_ends_and_flip_points_are_the_exact_ones() -> None:
    df = tornado(SPEC, exact, INPUTS, flip_steps=14)
    row = df[(df["input"] == "node.failure.crash.mtbf_hours")
             & (df["metric"] == "downtime_min_per_year")].iloc[0]
    assert row["at_low"] == pytest.approx(downtime(1000, 3), rel=1e-9)
    assert row["at_high"] == pytest.approx(downtime(10000, 3), rel=1e-9)
    budget = 1e-5 * MINUTES_PER_YEAR
    true_mtbf = optimize.brentq(lambda m: downtime(m, 3) - budget, 1000, 10000)
    true_mttr = optimize.brentq(lambda r: downtime(3000, r) - budget, 1, 10)
    assert row["flips_at"] == pytest.approx(true_mtbf, rel=2e-3)
    mttr = df[df["input"] == "node.failure.crash.repair.mean_hours"].iloc[0]
    assert mttr["flips_at"] == pytest.approx(true_mttr, rel=2e-3)


def test_simulated_tornado_agrees_with_the_exact_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TWIN_CACHE", str(tmp_path))
    spec = SPEC.model_copy(update={"simulation": SPEC.simulation.model_copy(
        update={"years": 200, "replications": 8})})
    inputs = {"node.failure.crash.mtbf_hours": Uncertain(low=100, high=300, reason="test")}
    sim = tornado(spec, simulated, inputs, flip_steps=0)
    ex = tornado(spec, exact, inputs, flip_steps=0)
    for col in ("at_low", "at_high"):  # within 10 %: 1,600 simulated years at ~100 outages/yr
        assert sim[col].iloc[0] == pytest.approx(ex[col].iloc[0], rel=0.1)


def test_sobol_indices_match_brute_force() -> None:
    """Var(E[Y | input]) / Var(Y) by quadrature on the exact formula, against SALib's estimate."""
    grid = np.linspace(0, 1, 401)
    m = 10 ** (3 + grid)
    r = 10 ** grid
    y = np.array([[downtime(mi, ri) for ri in r] for mi in m])  # rows: mtbf, cols: mttr
    var = y.var()
    s1 = {"node.failure.crash.mtbf_hours": y.mean(axis=1).var() / var,
          "node.failure.crash.repair.mean_hours": y.mean(axis=0).var() / var}
    df = sobol(SPEC, exact, INPUTS, samples=1024)
    df = df[df["metric"] == "downtime_min_per_year"].set_index("input")
    for key, truth in s1.items():
        est, conf = df.loc[key, "S1"], df.loc[key, "S1_conf"]
        assert abs(est - truth) <= max(conf, 0.02), (key, est, conf, truth)
    # product form: the two inputs' total effects are equal and above their first-order ones
    assert df["ST"].iloc[0] == pytest.approx(df["ST"].iloc[1], abs=0.1)
    assert (df["ST"] > df["S1"]).all()
