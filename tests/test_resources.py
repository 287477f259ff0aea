"""The resource model (sim/resources.py), the survivors' load through a failover and the plan from
measured costs: steady figures held to hand computations, the storm to the properties it must
have, the plan to its own definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.failover_load import storm_figures, survivor_load
from sim.pools import scenario_for
from sim.resources import (
    GIB,
    admission_rate_per_s,
    load_costs,
    memory_connection_limit,
    node_size,
    published_points,
    spec_costs,
    steady_load,
    utilisation,
)
from sim.spec import SpecError, load_spec, parse_spec
from sim.transient import simulate
from studies.variants import apply
from studies.vm_plan import fits, loss_figures, may_fit, plan

ROOT = Path(__file__).resolve().parent.parent
REF = ROOT / "models" / "renata-reference.toml"
FACTS = ROOT / "models" / "calibration" / "emqx-5.8.9-load-facts.json"


@pytest.fixture(scope="module")
def sized():
    """The reference on D8s_v5, its assumed overload point set aside."""
    return apply(load_spec(REF), {"cluster.overload_connections": None, "cluster.vm": "D8s_v5"})


def test_steady_state_is_the_hand_computation(sized):
    # 50,000 connections, half subscribers at 0.2 msg/s: 5,000 messages in and 5,000 out.
    load = steady_load(sized, 50_000)
    costs = spec_costs(sized)
    assert load.memory_bytes(costs) == pytest.approx(50_000 * 13_100 + 25_000 * 3_200)
    assert load.cpu_cores(costs) == pytest.approx(2 * 5_000 * 41e-6)
    util = utilisation(load, node_size(sized), costs)
    assert util["cpu"] == pytest.approx(0.41 / (8 * 0.75))
    assert util["memory"] == pytest.approx(735e6 / (32 * GIB * 0.70))
    assert util["flows"] == pytest.approx(0.1)
    # Spare CPU for connects on the 8 vCPU, and the connections 32 GiB hold.
    assert admission_rate_per_s(sized, node_size(sized), costs, 50_000) == pytest.approx(
        (8 - 0.41) / 0.00032)
    assert memory_connection_limit(sized, node_size(sized), costs) == int(32 * GIB / 14_700)


def test_upper_costs_cover_emqx_published_points():
    costs = load_costs(FACTS, qos=1)
    points = published_points(costs)
    for p in points:
        assert p["predicted_high"] >= 0.99 * p["published_high"], p
    assert 12.1 <= points[0]["predicted"] <= 16.1  # 1 M connections: inside the published range


def test_existing_topologies_keep_their_assumed_limits():
    spec = load_spec(REF)
    sc = scenario_for(spec, 0, "node.crash", 3, float("inf"))
    assert sc.overload_connections == 80_000 and sc.max_conn_rate_per_s is None
    assert sc.listen_backlog == spec.cluster.listen_backlog


def test_a_sized_node_admits_at_the_rate_its_cpu_allows(sized):
    # Least connections without persistence spreads the storm evenly: the rate assumes that.
    d4 = apply(sized, {"cluster.vm": "D4s_v5", "clients.count": 1_000_000,
                       "lb.persistence": "none"})
    d16 = apply(d4, {"cluster.vm": "D16s_v5"})
    out = {}
    for name, s in (("d4", d4), ("d16", d16)):
        sc = scenario_for(s, 0, "node.crash", 3, float("inf"), scale=0.04)
        vm = node_size(s)
        expected = admission_rate_per_s(s, vm, spec_costs(s), 500_000 / 2) * 0.04
        assert sc.max_conn_rate_per_s == pytest.approx(expected)
        r = simulate(sc, np.random.default_rng(3))
        load = survivor_load(sc, r, spec_costs(s), scale=0.04)
        # CPU-bound admission never asks more of a survivor than its VM has (one token of slack).
        assert load.peak_cpu() <= vm.vcpu * 1.01
        out[name] = float(np.percentile(r.outage_s, 95))
    assert out["d4"] > 2 * out["d16"]  # a quarter of the CPU: the storm takes longer


def test_memory_beyond_the_vm_is_a_cascade(sized):
    s = apply(sized, {"cluster.vm": "D4s_v5", "clients.count": 10_000_000})
    sc = scenario_for(s, 0, "node.crash", 3, float("inf"), scale=0.004)
    assert sc.overload_connections == round(memory_connection_limit(s, node_size(s),
                                                                    spec_costs(s)) * 0.004)
    assert simulate(sc, np.random.default_rng(1)).cascade


def test_survivor_load_adds_up(sized):
    sc = scenario_for(sized, 0, "node.crash", 3, float("inf"))
    r = simulate(sc, np.random.default_rng(5))
    costs = spec_costs(sized)
    load = survivor_load(sc, r, costs)
    # Every client of the failed node arrives at a survivor; at the end each holds its final count.
    assert load.connections[:, -1].sum() == pytest.approx(r.initial_counts.sum())
    assert np.allclose(load.connections[:, -1], r.counts_after[[1, 2]])
    end = steady_load(sized, float(r.counts_after[[1, 2]].max())).cpu_cores(costs)
    assert load.cpu_cores.max() > end  # the connects cost on top of the steady load
    fig = storm_figures(load, node_size(sized))
    assert fig["peak_cpu_fraction"] >= fig["alarm_cpu_fraction"]  # a 60 s mean is below the peak


def test_plan_is_the_smallest_size_that_fits(sized):
    spec = apply(sized, {"cluster.vm": None})
    df = plan(spec, [1_000_000], ["D4s_v5"], max_nodes=8, prices={"D4s_v5": 100.0})
    row = df.iloc[0]
    n = int(row["nodes_n_minus_2"])
    assert row["monthly_cost"] == 100.0 * n * 2  # two regions
    costs = spec_costs(spec)
    at = {k: apply(spec, {"clients.count": 1_000_000, "cluster.nodes": k, "cluster.vm": "D4s_v5"})
          for k in (n, n - 1)}
    assert fits(loss_figures(at[n], costs, 2))
    # One node fewer: an even spread already breaks a limit, or the storm leaves clients out.
    smaller = loss_figures(at[n - 1], costs, 2)
    assert not may_fit(at[n - 1], costs, 2) or not fits(smaller)
    assert smaller["storm"]["never_back"] > 0  # one survivor cannot take 500,000 back
    # The steady figures in the row are the arithmetic of its busiest survivor's connections.
    util = utilisation(steady_load(spec, row["n_minus_2_connections"]), node_size(at[n]), costs)
    assert row["n_minus_2_cpu"] == pytest.approx(util["cpu"])
    assert row["n_minus_2_binding"] == max(util, key=util.get)


@pytest.mark.parametrize("edit, message", [
    ({"vm": "D3s_v9"}, "cluster.vm = 'D3s_v9': allowed D4s_v5"),
    ({"vm": "D8s_v5", "vcpu": 8}, "give either cluster.vm or both"),
    ({"vcpu": 8}, "give both"),
    ({"vm": "D8s_v5", "load_costs": None}, "cluster.load_costs: required"),
    ({"cpu_headroom": 1.5}, "cpu_headroom"),
])
def test_bad_node_sizes_are_one_line(edit, message):
    cluster = {"nodes": 3, "load_costs": str(FACTS), **edit}
    cluster = {k: v for k, v in cluster.items() if v is not None}
    with pytest.raises(SpecError) as err:
        parse_spec({"meta": {"name": "x"}, "cluster": cluster})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_load_cost_file_is_named(tmp_path):
    top = tmp_path / "t.toml"
    top.write_text('[meta]\nname = "t"\n[cluster]\nnodes = 3\nvm = "D8s_v5"\n'
                   'load_costs = "nope.json"\n')
    with pytest.raises(SpecError, match=r"cluster.load_costs = .*nope.json.*no such file"):
        load_spec(top)
