"""Reproducibility, executors, --precision, and the shipped models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_spec

from sim.metrics import summarise, to_json
from sim.montecarlo import relative_half_width, replicate_longrun, run
from sim.spec import load_spec

# every topology shipped (a claims file is not one: tests/test_review.py loads those)
MODELS = sorted(p for p in (ROOT / "models").glob("**/*.toml") if not p.name.endswith("-claims.toml"))


def _simulate_json(tmp_path: Path, workers: int) -> bytes:
    out = tmp_path / f"w{workers}.json"
    subprocess.run([sys.executable, "-m", "twin.cli", "simulate", str(ROOT / "models" / "renata-reference.toml"),
                    "--years", "50", "--replications", "4", "--workers", str(workers), "--json", str(out)],
                   check=True, capture_output=True, timeout=300)
    return out.read_bytes()


def test_same_seed_gives_byte_identical_json_with_1_and_2_workers(tmp_path: Path) -> None:
    one, two = _simulate_json(tmp_path, 1), _simulate_json(tmp_path, 2)
    assert one == two
    assert b'"client_weighted"' in one and b'"rpo_seconds"' in one


def test_different_seed_gives_different_result() -> None:
    a = summarise(s := make_spec(), run(s, workers=1).results)
    b = summarise(s2 := make_spec(simulation={"years": 5, "replications": 10, "seed": 8}),
                  run(s2, workers=1).results)
    assert a["availability"]["service"] != b["availability"]["service"]


def test_dask_localcluster_gives_the_same_result() -> None:
    distributed = pytest.importorskip("distributed")
    spec = make_spec(simulation={"years": 5, "replications": 6, "seed": 3})
    local = to_json(summarise(spec, run(spec, workers=1, worker=replicate_longrun).results))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = run(spec, executor=client.get_executor(), worker=replicate_longrun).results
    assert to_json(summarise(spec, remote)) == local


def test_precision_adds_replications_until_met() -> None:
    spec = make_spec(simulation={"years": 1, "replications": 4, "seed": 5})
    outcome = run(spec, workers=1, precision=0.02, worker=replicate_longrun)
    assert outcome.stopped_by == "precision"
    assert len(outcome.results) > 4
    assert relative_half_width(outcome.results) <= 0.02
    # ... and without the last batch it had not been met.
    assert relative_half_width(outcome.results[: len(outcome.results) // 2]) > 0.02


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_shipped_models_load_and_run(path: Path) -> None:
    spec = load_spec(path)
    spec = spec.model_copy(update={"simulation": spec.simulation.model_copy(update={"years": 20})})
    result = replicate_longrun(spec, 0)
    assert result.horizon_s > 0
    assert sum(result.events_by_cause.values()) > 0


def test_reference_spells_out_every_figure() -> None:
    """Every failure/repair figure line in the reference carries a source or 'assumption'."""
    text = (ROOT / "models" / "renata-reference.toml").read_text()
    figure_lines = [ln for ln in text.splitlines()
                    if any(k in ln.split("#")[0] for k in ("mtbf_hours", "repair =", "ttf =", "failover =",
                                                            "replication_lag =", "per_node =", "outage ="))]
    assert figure_lines
    for line in figure_lines:  # an [uncertainty] range says it in its `reason`
        comment = line.split("#", 1)[1].lower() if "#" in line else \
            line.lower() if "reason =" in line else ""
        assert "assumption" in comment or "facts" in comment, line


def _impact_after(spec, events, flush_each: bool):
    import numpy as np

    from sim.clientimpact import ClientImpact

    impact = ClientImpact(spec, np.random.default_rng(7))
    cascaded = []
    for e in events:
        cascaded.append(impact(e))
        if flush_each:
            impact.flush()
    samples = impact.failover_samples()
    figures = (impact.client_seconds, impact.sessions_lost, impact.qos1_lost, impact.duplicates,
               impact.cascades, impact.events, dict(impact.client_seconds_by_cause))
    return figures, {k: v.tolist() for k, v in impact.drawn.items()}, \
        {k: v.tolist() for k, v in samples.items()}, cascaded


@pytest.mark.parametrize("overload", [None, 1])
def test_batched_client_accounting_equals_one_event_at_a_time(overload) -> None:
    """Events are accounted in batches where no draw can cascade; the figures must be the ones
    a draw and a sum per event give, to the last bit (and with cascades possible, per event)."""
    from sim.longrun import NodeEvent

    spec = load_spec(ROOT / "models" / "renata-reference.toml")
    spec = spec.model_copy(update={
        "clients": spec.clients.model_copy(update={"count": 2000}),
        "cluster": spec.cluster.model_copy(update={"overload_connections": overload})})
    causes = ["node.crash", "maintenance", "node.vm", "node.crash", "correlated.zone"]
    events = [NodeEvent(float(i), i % 2, causes[i % len(causes)], 3 - (i % 7 == 0), 2 - (i % 7 == 0))
              for i in range(300)]
    batched, one_by_one = _impact_after(spec, events, False), _impact_after(spec, events, True)
    assert batched == one_by_one
    assert (sum(batched[3]) > 0) == (overload is not None)  # the cascade path was taken
