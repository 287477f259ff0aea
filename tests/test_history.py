"""Long-run histories shared between designs of a study (sim/history.py): a replayed history must
give every figure a run of the design's own gives, and be refused where the design could cascade."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT, make_spec

import sim.montecarlo as montecarlo
from sim.longrun import longrun_inputs
from studies.evaluate import evaluate, evaluate_all
from studies.variants import apply


def _spec():
    return make_spec(simulation={"years": 20, "replications": 3, "seed": 5},
                     clients={"count": 3000, "sites": 10},
                     lb={"algorithm": "least_connections", "persistence": "client_ip",
                         "failure": {"mtbf_hours": 2000,
                                     "repair": {"dist": "exponential", "mean_s": 600}}},
                     maintenance={"interval_days": 30,
                                  "per_node": {"dist": "lognormal", "median_s": 300, "sigma": 0.3}},
                     node={"failure": {
                         "crash": {"mtbf_hours": 500, "repair": {"dist": "exponential", "mean_s": 60}},
                         "vm": {"mtbf_hours": 2000,
                                "repair": {"dist": "lognormal", "median_s": 600, "sigma": 0.6}}}})


def _figures(result) -> str:
    return json.dumps([result.summary, {k: v.tolist() for k, v in result.per_replication.items()}],
                      sort_keys=True, default=str)


@pytest.fixture
def runs(monkeypatch, tmp_path):
    """Long runs actually simulated (replications run in this process with workers=1)."""
    monkeypatch.setenv("TWIN_CACHE", str(tmp_path))
    monkeypatch.delenv("TWIN_LONGRUN_CACHE", raising=False)
    calls = []
    real = montecarlo.run_replication

    def counted(spec, seq, on_node_event=None):
        calls.append(spec.meta.name)
        return real(spec, seq, on_node_event=on_node_event)

    monkeypatch.setattr(montecarlo, "run_replication", counted)
    return calls


def test_designs_differing_in_what_clients_see_replay_one_history_with_identical_figures(runs) -> None:
    base = _spec()
    specs = [base, apply(base, {"lb.probe.protocol": "http", "cluster.sessions": "durable"}),
             apply(base, {"lb.algorithm": "five_tuple", "lb.persistence": "none"}),
             apply(base, {"cluster.nodes": 4})]  # a long run of its own
    shared = evaluate_all(specs, workers=1, use_cache=False)
    assert len(runs) == 2 * 3  # the base's 3 replications recorded, the nodes=4 design's own 3
    runs.clear()
    alone = [evaluate(s, workers=1, use_cache=False, progress=False) for s in specs]
    assert len(runs) == 4 * 3
    for a, b in zip(shared, alone, strict=True):
        assert _figures(a) == _figures(b), a.name


def test_a_design_that_could_cascade_runs_its_own_long_run(runs) -> None:
    base = _spec()
    tipping = apply(base, {"cluster.overload_connections": 1001})  # one node's share tips a survivor
    shared = evaluate_all([base, tipping], workers=1, use_cache=False)
    assert len(runs) == 2 * 3
    assert shared[1].summary["clients"]["cascades_per_year"]["mean"] > 0
    alone = evaluate(tipping, workers=1, use_cache=False, progress=False)
    assert _figures(shared[1]) == _figures(alone)


def test_longrun_inputs_cover_every_spec_field_the_long_run_reads() -> None:
    """The key of a shared history must change with everything sim/longrun.py reads, and only
    with that: otherwise designs would share a history they do not have."""
    source = (ROOT / "sim" / "longrun.py").read_text()
    code = source.split("def longrun_inputs")[0]  # the model, not the key
    reads = set(re.findall(r"spec\.([a-z_]+(?:\.[a-z_]+)*)", code))
    covered = {"simulation.years", "simulation.start", "simulation.seed", "cluster.min_nodes_up",
               "cluster.repair_crews", "node.failure.modes", "node.failure.crash", "lb",
               "lb.failure", "clients.session_expiry_s", "regions", "dr", "maintenance",
               "correlated", "region_sizes"}
    assert reads <= covered, f"longrun.py reads {reads - covered}: add it to longrun_inputs"
    base = _spec()
    same = {"lb.probe.protocol": "http", "cluster.sessions": "durable", "clients.count": 5000,
            "cluster.overload_connections": 10, "maintenance.evacuate": True,
            "clients.reconnect.jitter": "full", "simulation.replications": 7}
    for key, value in same.items():
        assert longrun_inputs(apply(base, {key: value})) == longrun_inputs(base), key
    differ = {"cluster.nodes": 4, "cluster.min_nodes_up": 1, "lb.failure.mtbf_hours": 100,
              "node.failure.vm.mtbf_hours": 10, "maintenance.interval_days": 7,
              "simulation.seed": 6, "simulation.years": 21, "clients.session_expiry_s": 60}
    for key, value in differ.items():
        assert longrun_inputs(apply(base, {key: value})) != longrun_inputs(base), key
