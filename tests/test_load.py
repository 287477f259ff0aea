"""The load lab without a broker: scenario refusals, the summary of recorded files, the cost fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calibration.load_costs import fit_load_costs, predict, validate_load
from lab.load.summary import summarize, windows

ROOT = Path(__file__).resolve().parent.parent
LOAD = ROOT / "lab" / "scenarios" / "load"
NO_ENGINE = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.mark.parametrize("edit, message", [
    (("processes = 2", "processes = 1\n# 5,000 clients in one"), None),
    (("subscribers = 2500", "subscribers = 25000"),
     "27500 clients over 2 processes = 13750 per process: at most 12000"),
    (("publish_per_s = 0.5", "publish_per_s = 20.0"), "100000 messages/s in + out: at most 20000"),
    (("connect_rate_per_s = 500", "connect_rate_per_s = 80"),
     "5000 new clients at 80/s take 62 s: more than half of load.step_s = 50"),
    (("qos = 0", "qos = 3"), "load.qos = 3: must be an integer in 0..2"),
    (("target = \"nodes\"", "target = \"all\""), "load.target = 'all': allowed nodes, lb"),
    (("step_s = 50", "step_s = 50\nramp = 1"), "load.ramp: unknown key"),
])
def test_a_load_scenario_beyond_the_machine_is_refused_before_docker(tmp_path: Path, edit, message):
    text = (LOAD / "ci-small.toml").read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    r = subprocess.run([sys.executable, "-m", "twin.cli", "lab", "load", str(bad), "--broker",
                        "standin", "--out", str(tmp_path / "out")], cwd=ROOT, env=NO_ENGINE,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    if message is None:  # a valid scenario goes on to the engine, which is not there
        assert "Docker" in r.stderr or "docker" in r.stderr, r.stderr
    else:
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _recorded_run(tmp_path: Path, overrun: int = 0, gen_cpu_share: float = 0.2) -> Path:
    """A run folder as the harness writes it: 2 steps of 20 s, one generator, one node whose CPU
    and memory follow known costs (2 ms per connect, 50 us per message; 10 KB per connection)."""
    meta = {"kind": "load", "scenario": "synthetic", "broker": "synthetic", "standin": True,
            "qos": 0, "payload_bytes": 128, "step_s": 20.0, "connect_rate_per_s": 100.0,
            "message_counts": "broker", "steps": [
                {"subscribers": 500, "publishers": 500, "publish_per_s": 0.0, "offline": 0, "topics": 0},
                {"subscribers": 500, "publishers": 500, "publish_per_s": 1.0, "offline": 0, "topics": 0}]}
    d = tmp_path / "synthetic-0"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps(meta))
    t0 = 1000.0
    gen, nodes = [{"ev": "step", "t": t0, "g": 0, "step": 0}], []
    cpu, msgs_in = 0.0, 0
    for i in range(81):  # 0.5 s samples over 40 s
        t = t0 + i * 0.5
        conns = min(1000, int(100 * (t - t0)))
        ramping = i > 0 and t - 0.5 < t0 + 10  # over the half second that ends at t
        rate = 500 if i > 0 and t - 0.5 >= t0 + 20 else 0
        cpu += 0.5 * (0.05 + (100 * 2e-3 if ramping else 0) + rate * 2 * 50e-6)
        msgs_in += int(rate * 0.5)
        nodes.append({"ev": "node", "t": t, "node": "n1", "cpu_s": cpu,
                      "anon_bytes": 50e6 + 10_000 * conns, "mem_bytes": 60e6 + 10_000 * conns})
        nodes.append({"ev": "counters", "t": t, "node": "n1", "connections": conns,
                      "subscriptions": conns // 2, "msgs_in": msgs_in, "msgs_out": msgs_in})
        if i % 2 == 0:
            gen.append({"ev": "sample", "t": t, "g": 0, "connected": conns, "cpu_s": gen_cpu_share * i / 2,
                        "connects": conns, "connack_failed": 0, "disconnects": 0,
                        "sent": msgs_in, "acked": 0, "recv": msgs_in,
                        "overrun": overrun * (t >= t0 + 30), "publish_errors": 0})
    (d / "gen-0.jsonl").write_text("\n".join(json.dumps(r) for r in gen) + "\n")
    (d / "nodes.jsonl").write_text("\n".join(json.dumps(r) for r in nodes) + "\n")
    return d


def test_the_summary_splits_steps_into_ramp_and_steady_and_reads_the_costs(tmp_path: Path) -> None:
    s = summarize(_recorded_run(tmp_path))
    assert s["valid"], s["invalid"]
    w = windows(s["meta"], 1000.0)
    assert [(x["step"], x["window"]) for x in w] == [(0, "ramp"), (0, "steady"), (1, "steady")]
    ramp, steady0, steady1 = s["points"]
    assert ramp["connects_per_s"] == pytest.approx(100, rel=0.02)
    assert ramp["cpu_cores"] == pytest.approx(0.05 + 0.2, rel=0.02)
    assert steady0["cpu_cores"] == pytest.approx(0.05, rel=0.02)
    assert steady1["msgs_in_per_s"] == pytest.approx(500, rel=0.02)
    assert steady1["cpu_cores"] == pytest.approx(0.05 + 0.05, rel=0.02)
    assert steady1["anon_bytes"] == pytest.approx(50e6 + 10_000 * 1000)


def test_a_generator_behind_its_schedule_or_saturated_makes_the_run_invalid(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    late = summarize(_recorded_run(tmp_path / "a", overrun=500))
    assert not late["valid"] and any("behind schedule" in w for w in late["invalid"])
    (tmp_path / "b").mkdir()
    busy = summarize(_recorded_run(tmp_path / "b", gen_cpu_share=0.95))
    assert not busy["valid"] and any("95% of a core" in w for w in busy["invalid"])


def test_the_fit_recovers_known_costs_within_its_interval() -> None:
    """Points drawn from known costs with noise (seed 1): each true cost inside its 95 % interval,
    and the held-out prediction within the bars."""
    rng = np.random.default_rng(1)
    true_mem = {"base_memory": 40e6, "connections": 12_000.0, "subscriptions": 3_000.0}
    true_cpu = {"base_cpu": 0.02, "msgs_in_per_s": 60e-6, "msgs_out_per_s": 40e-6,
                "connects_per_s": 1e-3}

    def run(seed_points: int) -> dict:
        pts = []
        for _ in range(seed_points):
            c, sub = rng.integers(500, 5000), rng.integers(0, 5000)
            mi, mo, cr = rng.uniform(0, 2000), rng.uniform(0, 2000), rng.choice([0.0, 150.0])
            pts.append({"node": "n", "step": 0, "window": "steady" if cr == 0 else "ramp",
                        "connections": c, "subscriptions": sub, "msgs_in_per_s": mi,
                        "msgs_out_per_s": mo, "connects_per_s": cr,
                        "anon_bytes": predict({"coefficients": {k: {"value": v} for k, v in true_mem.items()}},
                                              {"connections": c, "subscriptions": sub}) * rng.normal(1, 0.01),
                        "cpu_cores": predict({"coefficients": {k: {"value": v} for k, v in true_cpu.items()}},
                                             {"msgs_in_per_s": mi, "msgs_out_per_s": mo,
                                              "connects_per_s": cr}) + rng.normal(0, 0.005)})
        return {"meta": {"scenario": "s", "broker": "synthetic", "standin": True, "qos": 0,
                         "payload_bytes": 128}, "points": pts}

    costs = fit_load_costs([run(60)], "synthetic")
    for model, truth in (("memory", true_mem), ("cpu", true_cpu)):
        for k, v in truth.items():
            lo, hi = costs[model]["coefficients"][k]["ci95"]
            assert lo <= v <= hi, (model, k, lo, v, hi)
    assert costs["memory"]["coefficients"]["offline_sessions"]["value"] is None  # never varied
    report = validate_load([run(20)], costs)
    assert report["summary"]["memory"]["within_bar"] == report["summary"]["memory"]["points"] > 0


def test_predict_is_the_costs_times_the_load() -> None:
    """By hand, from the EMQX facts file: 1,000 connections with one subscription each and 100
    queued messages: 1,000 x (13,100 + 3,200) + 100 x 1,950 bytes (no base: not measured)."""
    facts = json.loads((ROOT / "models/calibration/emqx-5.8.9-load-facts.json").read_text())
    point = {"connections": 1000, "subscriptions": 1000, "queued_messages": 100}
    assert predict(facts["memory"], point) == 1000 * (13_100 + 3_200) + 100 * 1_950
    cpu = predict(facts["cpu"], {"msgs_in_per_s": 1000, "msgs_out_per_s": 1000, "connects_per_s": 10})
    assert cpu == pytest.approx(2000 * 41e-6 + 10 * 0.32e-3)
    assert facts["provenance"]["standin"] is False and "facts" in facts["provenance"]["source"]


def test_in_and_out_that_moved_together_are_one_cost_per_leg() -> None:
    """Pairs (in = out at every point) cannot tell the two apart: one cost per leg, for both,
    said so; the prediction is the same either way."""
    rng = np.random.default_rng(2)
    pts = []
    for _ in range(30):
        m, cr = rng.uniform(0, 1500), rng.choice([0.0, 150.0])
        pts.append({"node": "n", "step": 0, "window": "ramp" if cr else "steady",
                    "connections": rng.integers(100, 4000), "subscriptions": 0,
                    "msgs_in_per_s": m, "msgs_out_per_s": m, "connects_per_s": cr,
                    "anon_bytes": 1e7 + rng.normal(0, 1e4),
                    "cpu_cores": 0.02 + 2 * m * 80e-6 + cr * 2.5e-3 + rng.normal(0, 0.003)})
    costs = fit_load_costs([{"meta": {"scenario": "s", "broker": "b", "standin": True, "qos": 0,
                                      "payload_bytes": 128}, "points": pts}], "pairs")
    cin, cout = (costs["cpu"]["coefficients"][k] for k in ("msgs_in_per_s", "msgs_out_per_s"))
    assert cin["value"] == cout["value"] and cin["ci95"] == cout["ci95"] and "per message leg" in cin["note"]
    assert cin["ci95"][0] <= 80e-6 <= cin["ci95"][1]


@pytest.mark.parametrize("path", sorted(LOAD.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_load_scenario_fits_this_machine(path: Path) -> None:
    from lab.load.scenario import MAX_MESSAGES_PER_S, load_load_scenario

    s = load_load_scenario(path)
    assert s.name == path.stem and s.duration_s * s.repetitions <= 3600
    assert all(s.messages_per_s(st) <= MAX_MESSAGES_PER_S for st in s.steps)


STANDIN = ROOT / "models" / "calibration" / "standin-nats-load-2026-12-04"


def test_committed_standin_load_costs_are_reproducible_and_hold_their_held_out_points() -> None:
    """The committed stand-in costs are what the fit makes of the committed calibration runs, and
    predict the held-out run's points (other client counts and rates) within the bars."""
    from twin.load_cli import load_summaries

    committed = json.loads(STANDIN.with_suffix(".json").read_text())
    again = fit_load_costs(load_summaries([str(STANDIN) + "-calibration-runs"]), committed["name"])
    for kind in ("memory", "cpu"):
        assert again[kind] == committed[kind]
    report = validate_load(load_summaries([str(STANDIN) + "-held-out"]), committed)
    for kind in ("memory", "cpu"):
        s = report["summary"][kind]
        assert s["points"] >= 9 and s["within_bar"] == s["points"], s
    assert committed["provenance"]["standin"] is True
