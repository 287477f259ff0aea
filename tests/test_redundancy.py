"""Redundant parts behind a failure mode (RAID disks, network paths): the exact time to loss."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_spec

from sim.analytic import solve
from sim.redundancy import mean_time_to_loss
from sim.spec import SpecError


def test_mirror_and_no_redundancy_have_their_closed_forms() -> None:
    lam, mu = 1 / 50_000, 1 / 24
    assert mean_time_to_loss(2, 1, 50_000, 24) == pytest.approx((3 * lam + mu) / (2 * lam**2), rel=1e-9)
    # "tolerates 0": the first of 4 units to fail, 1 / (4 lam)
    assert mean_time_to_loss(4, 0, 50_000, 24) == pytest.approx(50_000 / 4, rel=1e-12)


def test_time_to_loss_matches_a_simulated_chain() -> None:
    """3 units, 1 tolerated, repairs 1/20 of a lifetime: 20,000 absorptions simulated event by
    event; the exact mean lies in their 99.9 % interval. Their spread is close to an exponential's
    (CV 1), which is why the long run may draw the mode's time to failure as exponential."""
    rng = np.random.default_rng(3)
    units, tolerates, mtbf, repair = 3, 1, 1.0, 0.05
    times = np.empty(20_000)
    for k in range(len(times)):
        t, down = 0.0, 0
        while down <= tolerates:
            fail, fix = (units - down) / mtbf, down / repair
            t += rng.exponential(1 / (fail + fix))
            down += 1 if rng.random() < fail / (fail + fix) else -1
        times[k] = t
    exact = mean_time_to_loss(units, tolerates, mtbf, repair)
    half = 3.29 * times.std(ddof=1) / np.sqrt(len(times))
    assert abs(times.mean() - exact) < half
    assert 0.95 < times.std() / times.mean() < 1.05


def test_a_mode_with_redundancy_is_the_mode_at_its_time_to_loss() -> None:
    """Two paths, each lost once per 20,000 h, 12 h to repair one: the node is cut off as often as
    a single path with the exact time to loss as its MTBF, and 100x less than with one path."""
    repair = {"dist": "exponential", "mean_s": 4 * 3600}
    paths = make_spec(node={"failure": {"partition": {
        "repair": repair, "mtbf_hours": 20_000,
        "redundancy": {"units": 2, "tolerates": 1, "unit_repair_hours": 12}}}})
    mtbf = mean_time_to_loss(2, 1, 20_000, 12)
    plain = make_spec(node={"failure": {"partition": {"repair": repair, "mtbf_hours": mtbf}}})
    assert solve(paths).service == solve(plain).service
    single = make_spec(node={"failure": {"partition": {"repair": repair, "mtbf_hours": 20_000}}})
    assert 1 - solve(paths).service < (1 - solve(single).service) / 100


@pytest.mark.parametrize(("mode", "message"), [
    ({"mtbf_hours": 5, "redundancy": {"units": 2, "tolerates": 2, "unit_repair_hours": 1}},
     "must be < units (2)"),
    ({"mtbf_hours": 5, "redundancy": {"units": 1, "unit_repair_hours": 1}}, "units"),
    ({"ttf": {"dist": "exponential", "mean_hours": 5},
      "redundancy": {"units": 2, "unit_repair_hours": 1}}, "redundancy needs mtbf_hours"),
])
def test_impossible_redundancy_is_one_line(mode, message) -> None:
    with pytest.raises(SpecError) as err:
        make_spec(node={"failure": {"disk": {"repair": {"dist": "exponential", "mean_s": 1}, **mode}}})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_backup_figures_are_the_interval_and_the_restore_quantiles() -> None:
    from sim.metrics import backup_figures

    spec = make_spec(regions=[{"name": "a", "nodes": 3}, {"name": "b", "nodes": 3}],
                     dr={"mode": "active_active", "failover": {"dist": "exponential", "mean_s": 60},
                         "backup_interval_hours": 24,
                         "restore": {"dist": "lognormal", "median_s": 2700, "sigma": 0.5}})
    b = backup_figures(spec)
    assert b["config_rpo_minutes_max"] == 1440 and b["config_rpo_minutes_p99"] == pytest.approx(1425.6)
    assert b["restore_minutes"]["p50"] == pytest.approx(45.0)
    assert b["restore_minutes"]["p99"] == pytest.approx(45.0 * np.exp(0.5 * 2.3263479), rel=1e-6)


def test_a_variant_unsets_what_toml_cannot_null() -> None:
    """A claim's what-if replaces a Weibull disk lifetime by RAID 0 over two disks: `unset`
    removes the `ttf` that `mtbf_hours` may not stand beside; any disk lost is fatal, so the
    node loses its array twice as often as one disk fails."""
    from studies.variants import apply

    spec = make_spec(node={"failure": {"disk": {"repair": {"dist": "exponential", "mean_s": 60},
                                                "ttf": {"dist": "weibull", "shape": 1.2, "mean_hours": 100}}}})
    raid0 = apply(spec, {"unset": ["node.failure.disk.ttf"], "node.failure.disk.mtbf_hours": 100,
                         "node.failure.disk.redundancy": {"units": 2, "tolerates": 0,
                                                          "unit_repair_hours": 12}})
    assert raid0.node.failure.disk.ttf is None
    assert raid0.node.failure.disk.mttf_s() == pytest.approx(50 * 3600)
