"""The lab against the CI stand-in (NATS cluster + HAProxy in containers built here).

Without a Docker engine these tests skip with the reason; with TWIN_REQUIRE_LAB=1 (set by .ci/run)
a missing engine, image tool or binary fails them instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lab.checker import check
from lab.cluster import ROOT, Lab, LabConfig, LabError, docker_client
from lab.fleet import Fleet, FleetSettings
from lab.history import HistoryWriter, read_history
from lab.runner import run_scenario
from lab.scenario import load_scenario
from sim.calibration import calibrate, load_results, markdown_tables, meets_targets, validate

REQUIRE = os.environ.get("TWIN_REQUIRE_LAB") == "1"
IMAGE = "mqtt-ha-twin/standin:bookworm"
# crash, hang and partition run in the calibration loop below (which asserts the same of each run).
SCENARIOS = ["crash-and-return", "graceful-stop", "lb-loss", "rolling-restart", "partition-and-heal"]
# Where no broker comes back while clients are measured, replicated sessions must lose nothing
# that was acknowledged. Where one does, the stand-in has been seen to lose some (38 of 2,310 in
# one crash-and-return run: a subscriber got "session present" from the restarted node and then
# nothing): that is a finding the lab reports, so those runs assert only what always held.
NO_RETURN = {"crash", "hang", "partition", "lb-loss"}
LOOP = ("crash", "hang", "partition")
# The loop's own calibration shows that fresh runs go through calibrate and validate: medians
# and p95 are held, KS is not (see below). A crash's outage is set by timeouts, one run of each
# kind does; a hang's or partition's median sits in a 1 s mode ~10 ms wide, and one run with a
# CONNACK latency apart (once 100 ms) would be half of what the twin draws (p50 +9 % in one loop).
CALIBRATION_RUNS_PER_KIND = {"crash": 1, "hang": 2, "partition": 2}
# KS is held on the committed calibration, and needs many held-out runs: a run's CONNACK latency
# is one draw of a run-level effect and a hang's or partition's 1 s mode is ~10 ms wide. Drawn
# from 20-30 earlier runs per mode, k held-out runs met KS < 0.2 with the committed calibration
# in (hang / partition) 81 / 71 % of 1,000 draws for k = 4, 93 / 91 % for 6, 99.7 / 100 % for 10.
# Crash's outages are 0.25 s wide (timer ticks): 4 runs met it in every draw (KS at most 0.18).
HELD_OUT_RUNS = {"crash": 4, "hang": 10, "partition": 10}
COMMITTED_CALIBRATION = ROOT / "models" / "calibration" / "standin-nats-2026-11-27.json"
ENV = {**os.environ, "EMQX_NODE__COOKIE": "test-only", "EMQX_DASHBOARD_PASSWORD": "test-only"}


def need(ok: bool, reason: str) -> None:
    if not ok:
        if REQUIRE:
            pytest.fail(f"{reason} (TWIN_REQUIRE_LAB=1)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def engine():
    try:
        client = docker_client()
    except LabError as err:
        need(False, str(err))
    try:
        client.images.get(IMAGE)
    except Exception:
        need(shutil.which("debootstrap") is not None, "no stand-in image and no debootstrap to build it")
        subprocess.run(["bash", str(ROOT / "lab/standin/build-image.sh"), IMAGE], check=True)
    yield client
    Lab(LabConfig(standin=True)).down()


def _bound(s) -> float:
    """Generous: the fault's hold time, keepalive detection twice over and two full back-offs."""
    c = s.clients
    return s.fault_s + 2 * 2 * c.keepalive_s + 2 * c.reconnect_max_s + 10


def _assert_run_holds(name: str, scenario, summary: dict, out: Path, k: int = 0) -> None:
    m, clients, outages = summary["messages"], summary["clients"], summary["client_outage_s"]
    print(name, k, summary["meta"]["target"], outages, m, summary["sessions"])
    assert clients["seen"] >= 50
    assert clients["not_reconnected"] == []  # every client came back
    assert m["acknowledged"] > 0
    assert m["received_unique"] + m["lost_unacknowledged"] + m["acknowledged_lost"] == m["sent"]
    if name in NO_RETURN:
        assert m["acknowledged_lost"] == 0  # replicated sessions, no node rejoining
    assert outages["count"] > 0 and 0 < outages["p50"] and outages["max"] < _bound(scenario)
    assert (out / f"{name}-{k}.jsonl").stat().st_size > 0
    if name in ("crash", "hang", "partition", "graceful-stop"):
        assert summary["sessions"]["present_ratio"] == 1.0


@pytest.mark.lab
@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_on_standin(engine, tmp_path: Path, name: str) -> None:
    scenario = load_scenario(ROOT / "lab" / "scenarios" / f"{name}.toml")
    [summary] = run_scenario(scenario, tmp_path, 1, standin=True)
    _assert_run_holds(name, scenario, summary, tmp_path)


@pytest.mark.lab
def test_calibration_loop_on_standin(engine, tmp_path: Path) -> None:
    """Issue #5's loop: scenarios -> calibrate on some runs -> replay the others in the twin."""
    cal, held = tmp_path / "calibration", tmp_path / "held-out"
    for name in LOOP:
        scenario = load_scenario(ROOT / "lab" / "scenarios" / f"{name}.toml")
        # Calibrate on runs that fail the session store's leader and runs that do not (the
        # stand-in's survivors wait for a new leader: 1 s outages become 7 s); hold out runs of
        # the scenario's own target, whichever node leads.
        for target in ("session_store_leader", "session_store_follower"):
            summaries = run_scenario(replace(scenario, target=target), cal / target,
                                     CALIBRATION_RUNS_PER_KIND[name], standin=True)
            for k, summary in enumerate(summaries):
                _assert_run_holds(name, scenario, summary, cal / target, k)
        summaries = run_scenario(scenario, held, HELD_OUT_RUNS[name], standin=True)
        for k, summary in enumerate(summaries):
            _assert_run_holds(name, scenario, summary, held, k)
    calibration = calibrate(load_results([cal / "session_store_leader",
                                          cal / "session_store_follower"]), "ci-standin")
    report = validate(load_results([held]), calibration)
    table = markdown_tables(calibration, report)
    out = ROOT / "out" / "calibration-loop"
    out.mkdir(parents=True, exist_ok=True)
    (out / "validation.md").write_text(table + "\n")
    (out / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
    print(table)
    assert set(report["modes"]) == {"crash", "hang", "partition"}
    # The committed stand-in calibration (test_calibration.py: what `calibrate` makes of the
    # committed runs) replays these held-out runs, all made after it: issue #5's whole bar, KS
    # included, pooled per mode; sessions and loss exact per run.
    committed = json.loads(COMMITTED_CALIBRATION.read_text())
    later = validate(load_results([held]), committed)
    print("\ncommitted calibration vs these held-out runs:\n" + markdown_tables(committed, later))
    # This loop's own calibration from 2-4 fresh runs per mode: medians and p95 within 15 %, KS
    # printed, not asserted: a calibration run whose CONNACK latency sits apart (once 47 ms
    # against 10-20 ms) moves a hang's or partition's 1 s mode (redrawing 4 calibration + 4
    # held-out runs from the committed ones met the KS bar in 71 % / 50 % of draws, README).
    for mode, m in report["modes"].items():
        assert meets_targets(m, ks=None), (mode, m["lab"], m["sim"], m["ks_distance"])
    for mode, m in later["modes"].items():
        assert meets_targets(m), (mode, m["lab"], m["sim"], m["ks_distance"])
    for r in report["runs"] + later["runs"]:  # persistent sessions: exact
        assert r["session_present"]["lab"] == r["session_present"]["sim"], r["run"]
        assert r["acknowledged_lost"]["lab"] == r["acknowledged_lost"]["sim"], r["run"]


@pytest.mark.lab
def test_interrupted_pause_leaves_nothing_paused(engine, tmp_path: Path) -> None:
    text = (ROOT / "lab/scenarios/hang.toml").read_text().replace("fault_s = 20", "fault_s = 300")
    scenario_file = tmp_path / "long-hang.toml"
    scenario_file.write_text(text.replace('name = "hang"', 'name = "long-hang"'))
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "lab", "run", str(scenario_file),
                             "--standin", "--out", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    history = tmp_path / "long-hang-0.jsonl"
    deadline = time.monotonic() + 180
    while not (history.exists() and '"ev":"fault"' in history.read_text()):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the fault never started"
        time.sleep(0.5)
    lab = Lab(LabConfig(standin=True))
    assert [c for c in lab.containers() if c.status == "paused"]  # the fault is in force
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert not [c.name for c in lab.containers() if c.status == "paused"]
    records = read_history(history)
    assert records[-1]["ev"] == "stop" or any(r["ev"] == "stop" for r in records)
    assert any(r["ev"] == "recv" for r in records)  # what was measured is on disk


@pytest.mark.lab
def test_fleet_of_500_clients_from_one_process(engine, tmp_path: Path) -> None:
    """Clean sessions: the stand-in creates replicated JetStream consumers for persistent ones
    slowly (85 of 250 in 120 s were seen), which would measure NATS, not the fleet."""
    lab = Lab(LabConfig(standin=True))
    lab.up()
    h = HistoryWriter(tmp_path / "fleet.jsonl")
    fleet = Fleet(*lab.endpoint(), FleetSettings(subscribers=250, publishers=250, publish_per_s=0.5,
                                                persistent=False),
                  h, "big")
    try:
        took = fleet.start(timeout_s=120)
        time.sleep(5)
        assert len(fleet.connected) == 500
    finally:
        h.write("stop")
        fleet.stop()
        h.close()
    out = check(read_history(tmp_path / "fleet.jsonl"))
    print(f"500 clients connected in {took:.1f} s; {out['messages']}")
    m = out["messages"]
    # Capacity of the fleet, not the broker: every message was acknowledged and most arrived.
    # (Not zero loss: once, 2 of 250 fresh subscriptions had not reached the publishers' node
    # 6 s after their SUBACK, so 6 of 750 messages found no subscriber there.)
    assert m["sent"] >= 500 and m["acknowledged"] == m["sent"]
    assert m["received_unique"] >= 0.95 * m["sent"]


@pytest.mark.parametrize("args", [[], ["--profile", "region-b"], ["--profile", "monitoring"],
                                  ["-f", "lab/standin/docker-compose.standin.yml"]])
def test_compose_files_are_valid(args: list[str]) -> None:
    exe = shutil.which("docker-compose")
    need(exe is not None, "docker-compose is not installed")
    extra = args if args[:1] == ["--profile"] else []
    files = ["-f", "docker-compose.lab.yml"] + (args if args[:1] == ["-f"] else [])
    r = subprocess.run([exe, *files, *extra, "config", "-q"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_compose_binds_published_ports_to_loopback_only() -> None:
    import yaml

    data = yaml.safe_load((ROOT / "docker-compose.lab.yml").read_text())
    ports = [p for svc in data["services"].values() for p in svc.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    assert "COOKIE" not in str(data).replace("EMQX_NODE__COOKIE", "")  # no default cookie


def test_alert_rules_pass_promtool() -> None:
    exe = shutil.which("promtool")
    need(exe is not None, "promtool is not installed (Debian package prometheus)")
    r = subprocess.run([exe, "test", "rules", "alerts_test.yml"], cwd=ROOT / "lab" / "monitoring",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.lab
def test_heal_repairs_what_a_killed_harness_left(engine) -> None:
    """SIGKILL cannot be caught: the next run's heal() unpauses, restarts and reconnects."""
    from lab.faults import heal

    lab = Lab(LabConfig(standin=True))
    lab.up()
    lab.container("emqx-a1").pause()
    lab.docker.networks.get("mqtt-ha-twin-lab_region-a").disconnect(lab.container("emqx-a2"))
    lab.container("emqx-a3").kill()
    repaired = heal(lab)
    assert len(repaired) == 3, repaired
    assert lab.wait_healthy(120) >= 0
    assert all(c.status == "running" for c in lab.containers())
