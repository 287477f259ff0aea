"""The lab: real brokers behind HAProxy, with faults, the paho fleet and the checker.

The broker is EMQX where an EMQX image is on this machine (`mqtt-ha-twin/emqx:5.8.9-local`, packed
from an official release tarball by lab/images/build.sh, or the image EMQX_IMAGE names), else the
NATS stand-in. CI has no EMQX: there the harness, faults, fleet, checker and calibration loop run on
the stand-in and must not skip (TWIN_REQUIRE_LAB=1 turns a missing engine or tool into a failure);
the tests of EMQX's own behaviour skip with their reason. Without a Docker engine everything here
skips with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from calibration.fit import calibrate
from calibration.report import markdown_tables
from calibration.results import load_results
from calibration.validate import consistent_with_targets, validate
from lab.brokers import EMQX_HUB_IMAGE, EMQX_LOCAL_IMAGE, adapter
from lab.checker import check
from lab.cluster import ROOT, Lab, LabConfig, LabError, docker_client
from lab.fleet import Fleet, FleetSettings
from lab.history import HistoryWriter, read_history
from lab.runner import run_scenario
from lab.scenario import load_scenario

REQUIRE = os.environ.get("TWIN_REQUIRE_LAB") == "1"
EMQX_TARBALL = os.environ.get("EMQX_TARBALL", "")  # optional: build.sh packs it into an image
NO_EMQX = ("no EMQX image on this machine: `twin lab up --broker emqx` pulls one from Docker Hub; "
           "`lab/images/build.sh TARBALL` packs an official release")
# crash, hang and partition run in the calibration loops below (which assert the same of each run).
SCENARIOS = ["crash-and-return", "graceful-stop", "lb-loss", "rolling-restart", "partition-and-heal"]
LOOP = ("crash", "hang", "partition")
# Fresh held-out runs per mode. A run is one draw of run-level effects (the LB's phase against a
# crash's first retry, how many CONNECTs the survivors refuse): KS < 0.2 needs about 10 runs per
# mode, and a pooled median over 3-4 runs jumps between a crash's 1 s and 8 s modes with the mix
# of runs. So CI holds what these runs can show (no error beyond 15 % that the runs agree on:
# calibration/validate.py consistent_with_targets) and prints the rest; the 15 % / KS bar itself is
# held on the committed 30 held-out runs (tests/test_calibration.py).
HELD_OUT_RUNS = {"crash": 3, "hang": 4, "partition": 4}
# The stand-in's loop (CI): one run per mode whose failed node leads the session store and one
# whose does not (NATS survivors wait for a new leader: 1 s outages become 7 s), then 3 held-out
# runs per mode of the scenario's own target, with the timings of the committed stand-in set.
STANDIN_HELD_OUT_RUNS = 3
COMMITTED_CALIBRATION = ROOT / "models" / "calibration" / "emqx-5.8.9-2026-11-27.json"
COMMITTED_STANDIN = ROOT / "models" / "calibration" / "standin-nats-2026-11-27.json"
ENV = {**os.environ, "EMQX_NODE__COOKIE": "test-only", "EMQX_DASHBOARD_PASSWORD": "test-only"}


def need(ok: bool, reason: str) -> None:
    if not ok:
        if REQUIRE:
            pytest.fail(f"{reason} (TWIN_REQUIRE_LAB=1)")
        pytest.skip(reason)


def _has_image(client, name: str) -> bool:
    return bool(client.images.list(name))


@pytest.fixture(scope="module")
def engine():
    """A Docker engine with the images built here (base: HAProxy, nft, NATS; Prometheus)."""
    try:
        client = docker_client()
    except LabError as err:
        need(False, str(err))
    missing = [i for i in adapter("standin").required_images(("monitoring",))
               if not _has_image(client, i)]
    if missing or (EMQX_TARBALL and not _has_image(client, EMQX_LOCAL_IMAGE)):
        need(shutil.which("debootstrap") is not None, f"images {missing} missing and no debootstrap")
        r = subprocess.run(["bash", str(ROOT / "lab/images/build.sh"), EMQX_TARBALL],
                           capture_output=True, text=True)
        need(r.returncode == 0, f"lab/images/build.sh failed: {r.stderr.strip()[-300:]}")
    yield client
    for broker in ("standin", "emqx-local"):
        Lab(LabConfig(broker=broker)).down()


def _emqx_broker(client) -> str | None:
    """The EMQX broker whose image is on this machine (tests pull nothing), else None."""
    if _has_image(client, os.environ.get("EMQX_IMAGE") or EMQX_LOCAL_IMAGE):
        return "emqx-local"
    return "emqx" if _has_image(client, EMQX_HUB_IMAGE) else None


@pytest.fixture(scope="module")
def emqx(engine) -> str:
    """An EMQX broker, or a skip with the reason (even in CI, which has no EMQX)."""
    broker = _emqx_broker(engine)
    if broker is None:
        pytest.skip(NO_EMQX)
    return broker


@pytest.fixture(scope="module")
def lab_broker(engine) -> str:
    """EMQX where it is here, else the stand-in: for tests of the harness, not of the broker."""
    return _emqx_broker(engine) or "standin"


def _bound(s) -> float:
    """Generous: the fault's hold time, keepalive detection twice over and two full back-offs."""
    c = s.clients
    return s.fault_s + 2 * 2 * c.keepalive_s + 2 * c.reconnect_max_s + 10


def _assert_run_holds(name: str, scenario, summary: dict, out: Path, k: int = 0) -> None:
    m, clients, outages = summary["messages"], summary["clients"], summary["client_outage_s"]
    o = summary["origin"]
    print(name, k, summary["meta"]["target"], outages, m, summary["sessions"])
    assert clients["seen"] >= 50
    assert clients["not_reconnected"] == []  # every client came back
    assert m["acknowledged"] > 0
    assert m["received_unique"] + m["lost_unacknowledged"] + m["acknowledged_lost"] == m["sent"]
    assert outages["count"] > 0 and 0 < outages["p50"] and outages["max"] < _bound(scenario)
    assert (out / f"{name}-{k}.jsonl").stat().st_size > 0
    if name in LOOP:  # the node stays down: EMQX's in-memory sessions of its clients are gone
        assert o["placement_known"] and o["target_clients"] > 0
        assert len(o["target_client_outages"]) == o["target_clients"]
        # what was queued for them went with the node (after a hang or partition EMQX may still
        # say "session present", for a session it re-created empty: up to 100 % in one CI run)
        assert m["acknowledged_lost"] > 0
    if name == "crash":
        assert summary["sessions"]["present_ratio"] == 0.0
    if name in ("hang", "partition"):  # survivors counted the node down after the tick time
        released = o["roles_elected_s"][f"sessions@{summary['meta']['target']}"]
        tick = summary["meta"]["dist_net_ticktime_s"]
        assert 0.5 * tick <= released <= 1.5 * tick, released
        assert min(o["target_client_outages"]) >= 0.5 * tick  # nobody got in before that


@pytest.mark.lab
@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_on_emqx(emqx, tmp_path: Path, name: str) -> None:
    scenario = load_scenario(ROOT / "lab" / "scenarios" / f"{name}.toml")
    [summary] = run_scenario(scenario, tmp_path, 1, broker=emqx)
    _assert_run_holds(name, scenario, summary, tmp_path)


def _valid_runs(scenario, out: Path, n: int, broker: str) -> list[dict]:
    """`n` valid runs as out/NAME-0..n-1. A run the checker marks invalid (a subscription that
    never delivered before the fault: the set-up was measured, not the failover) is kept in
    out/invalid and made again, twice at most in all."""
    runs: list[dict] = []
    retries = 2
    while len(runs) < n:
        [summary] = run_scenario(scenario, out / "attempt", 1, broker=broker)
        dest, k = (out, len(runs)) if summary["valid"] else (out / "invalid", retries)
        dest.mkdir(parents=True, exist_ok=True)
        for ext in ("json", "jsonl"):
            (out / "attempt" / f"{scenario.name}-0.{ext}").rename(dest / f"{scenario.name}-{k}.{ext}")
        if summary["valid"]:
            runs.append(summary)
            continue
        print("invalid run, made again:", summary["invalid"])
        assert retries > 0, summary["invalid"]
        retries -= 1
    (out / "attempt").rmdir()
    return runs


def _assert_standin_run_holds(name: str, scenario, summary: dict, out: Path, k: int = 0) -> None:
    """The stand-in with replicated sessions (stream replicas 3): every client back, nothing
    acknowledged lost where no node rejoins (one that does has lost some: docs/standin.md)."""
    m, clients, outages = summary["messages"], summary["clients"], summary["client_outage_s"]
    print(name, k, summary["meta"]["target"], outages, m, summary["sessions"])
    assert summary["meta"]["standin"] is True and summary["valid"]
    assert clients["seen"] >= 50 and clients["not_reconnected"] == []
    assert m["acknowledged"] > 0
    assert m["received_unique"] + m["lost_unacknowledged"] + m["acknowledged_lost"] == m["sent"]
    assert outages["count"] > 0 and 0 < outages["p50"] and outages["max"] < _bound(scenario)
    assert (out / f"{name}-{k}.jsonl").stat().st_size > 0
    if name in (*LOOP, "lb-loss"):
        assert m["acknowledged_lost"] == 0
    if name in LOOP:
        assert summary["origin"]["placement_known"] and summary["origin"]["target_clients"] > 0
        assert summary["sessions"]["present_ratio"] == 1.0


def _standin(name: str, **changes):
    """A scenario on the stand-in as its committed set was made: replicated sessions, and for
    the loop's modes the timings of those runs (a 20 s fault)."""
    scenario = load_scenario(ROOT / "lab" / "scenarios" / f"{name}.toml")
    timing = {"fault_s": 20} if name in LOOP else {}
    return replace(scenario, sessions="durable", **{**timing, **changes})


@pytest.mark.lab
@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "graceful-stop"])
def test_scenario_on_standin(engine, tmp_path: Path, name: str) -> None:
    """The faults that the loop below does not run, on the stand-in (graceful-stop: below)."""
    scenario = _standin(name)
    [summary] = _valid_runs(scenario, tmp_path, 1, "standin")
    _assert_standin_run_holds(name, scenario, summary, tmp_path)


@pytest.mark.lab
def test_calibration_loop_on_standin(engine, tmp_path: Path) -> None:
    """The loop where no EMQX is (CI): fresh stand-in runs -> calibrate -> validate fresh held-out
    runs, with that calibration and with the committed stand-in one (made before them)."""
    if _emqx_broker(engine):
        pytest.skip("EMQX is here: the loop runs on it (test_calibration_loop_on_emqx)")
    cal, held = tmp_path / "calibration", tmp_path / "held-out"
    for name in LOOP:
        for target in ("session_store_leader", "session_store_follower"):
            scenario = _standin(name, target=target)
            [summary] = _valid_runs(scenario, cal / target, 1, "standin")
            _assert_standin_run_holds(name, scenario, summary, cal / target)
        scenario = _standin(name)
        summaries = _valid_runs(scenario, held, STANDIN_HELD_OUT_RUNS, "standin")
        for k, summary in enumerate(summaries):
            _assert_standin_run_holds(name, scenario, summary, held, k)
    calibration = calibrate(load_results([cal / "session_store_leader",
                                          cal / "session_store_follower"]), "ci-standin")
    report = validate(load_results([held]), calibration)
    committed = json.loads(COMMITTED_STANDIN.read_text())
    later = validate(load_results([held]), committed)
    table = (markdown_tables(calibration, report) + "\n\ncommitted stand-in calibration vs these "
             "held-out runs:\n" + markdown_tables(committed, later))
    out = ROOT / "out" / "calibration-loop"
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
    (out / "validation.md").write_text(table + "\n")
    print(table)
    assert set(report["modes"]) == set(LOOP) == set(later["modes"])
    for mode, m in [*report["modes"].items(), *later["modes"].items()]:
        assert consistent_with_targets(m), (mode, m["lab"], m["sim"], m["rel_error_runs95"])
    for r in report["runs"] + later["runs"]:  # replicated sessions: exact in lab and twin
        assert r["session_present"]["lab"] == r["session_present"]["sim"], r["run"]
        assert r["acknowledged_lost"]["lab"] == r["acknowledged_lost"]["sim"], r["run"]


@pytest.mark.lab
def test_emqx_open_source_refuses_durable_sessions_in_a_cluster(emqx, tmp_path: Path) -> None:
    """EMQX 5.8.9's open-source durable storage is node-local (builtin_local) and EMQX refuses it
    in a cluster at boot: the lab says so in one line within seconds, not after a timeout."""
    scenario = load_scenario(ROOT / "lab" / "scenarios" / "graceful-stop.toml")
    start = time.monotonic()
    with pytest.raises(LabError, match="singleton.*builtin_local"):
        run_scenario(replace(scenario, sessions="durable"), tmp_path, 1, broker=emqx)
    assert time.monotonic() - start < 90


@pytest.mark.lab
def test_standin_still_runs_as_a_second_broker(engine, tmp_path: Path) -> None:
    """The adapter keeps NATS a broker, not a special case: its replicated sessions survive a stop.

    The stopped node returns after the run: NATS 2.9, on its return, kicks every client that had
    been on it, and once (CI, 2026-11-28) one of those 15 sessions came back 'present' but never
    got a message again (38 acknowledged QoS 1 lost). That is the stand-in's own bug, not the
    adapter's, so it is kept out of the window this test holds to zero loss."""
    scenario = load_scenario(ROOT / "lab" / "scenarios" / "graceful-stop.toml")
    scenario = replace(scenario, sessions="durable", undo="after_run")
    [summary] = run_scenario(scenario, tmp_path, 1, broker="standin")
    assert summary["meta"]["standin"] is True and summary["origin"]["placement_known"]
    assert summary["clients"]["not_reconnected"] == []
    assert summary["sessions"]["present_ratio"] == 1.0
    assert summary["messages"]["acknowledged_lost"] == 0


@pytest.mark.lab
def test_calibration_loop_on_emqx(emqx, tmp_path: Path) -> None:
    """Issue #11's loop on EMQX: scenarios -> calibrate on fresh runs -> replay fresh held-out
    runs in the twin, with that calibration and with the committed one (made before them)."""
    cal, held = tmp_path / "calibration", tmp_path / "held-out"
    for name in LOOP:
        scenario = load_scenario(ROOT / "lab" / "scenarios" / f"{name}.toml")
        for k, summary in enumerate(_valid_runs(scenario, cal, 1, emqx)):
            _assert_run_holds(name, scenario, summary, cal, k)
        for k, summary in enumerate(_valid_runs(scenario, held, HELD_OUT_RUNS[name], emqx)):
            _assert_run_holds(name, scenario, summary, held, k)
    calibration = calibrate(load_results([cal]), "ci-emqx")
    report = validate(load_results([held]), calibration)
    out = ROOT / "out" / "calibration-loop"
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
    committed = json.loads(COMMITTED_CALIBRATION.read_text())
    later = validate(load_results([held]), committed)
    table = (markdown_tables(calibration, report) + "\n\ncommitted calibration vs these held-out "
             "runs:\n" + markdown_tables(committed, later))
    (out / "validation.md").write_text(table + "\n")
    print(table)
    assert set(report["modes"]) == set(LOOP)
    # From one fresh calibration run per mode and from the committed calibration (made before
    # these runs): no error beyond 15 % in pooled median or p95 that the fresh runs agree on; the
    # point errors and KS are printed (see HELD_OUT_RUNS).
    for mode, m in [*report["modes"].items(), *later["modes"].items()]:
        assert consistent_with_targets(m), (mode, m["lab"], m["sim"], m["rel_error_runs95"])
    for r in later["runs"]:
        if r["mode"] == "crash":  # a dead node's memory sessions: none present, in lab and twin
            assert r["session_present"]["lab"] == r["session_present"]["sim"] == 0.0, r["run"]


@pytest.mark.lab
def test_interrupted_pause_leaves_nothing_paused(lab_broker, tmp_path: Path) -> None:
    text = re.sub(r"(?m)^fault_s = \d+", "fault_s = 300", (ROOT / "lab/scenarios/hang.toml").read_text())
    assert "fault_s = 300" in text
    scenario_file = tmp_path / "long-hang.toml"
    scenario_file.write_text(text.replace('name = "hang"', 'name = "long-hang"'))
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "lab", "run", str(scenario_file),
                             "--broker", lab_broker, "--out", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    history = tmp_path / "long-hang-0.jsonl"
    deadline = time.monotonic() + 180
    while not (history.exists() and '"ev":"fault"' in history.read_text()):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the fault never started"
        time.sleep(0.5)
    lab = Lab(LabConfig(broker=lab_broker))
    assert [c for c in lab.containers() if c.status == "paused"]  # the fault is in force
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert not [c.name for c in lab.containers() if c.status == "paused"]
    records = read_history(history)
    assert records[-1]["ev"] == "stop" or any(r["ev"] == "stop" for r in records)
    assert any(r["ev"] == "recv" for r in records)  # what was measured is on disk


@pytest.mark.lab
def test_fleet_of_500_clients_from_one_process(lab_broker, tmp_path: Path) -> None:
    """Clean sessions: the stand-in creates replicated JetStream consumers for persistent ones
    slowly (85 of 250 in 120 s were seen), which would measure NATS, not the fleet."""
    lab = Lab(LabConfig(broker=lab_broker))
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
def test_heal_repairs_what_a_killed_harness_left(lab_broker) -> None:
    """SIGKILL cannot be caught: the next run's heal() unpauses, restarts and reconnects."""
    from lab.faults import heal

    lab = Lab(LabConfig(broker=lab_broker))
    lab.up()
    lab.container("emqx-a1").pause()
    lab.docker.networks.get("mqtt-ha-twin-lab_region-a").disconnect(lab.container("emqx-a2"))
    lab.container("emqx-a3").kill()
    repaired = heal(lab)
    assert len(repaired) == 3, repaired
    assert lab.wait_healthy(120) >= 0
    assert all(c.status == "running" for c in lab.containers())


def _prometheus(path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:19090{path}", timeout=3) as resp:  # the lab's
        return json.loads(resp.read())


@pytest.mark.lab
def test_node_down_alert_fires_on_a_real_scrape(emqx) -> None:
    """The monitoring profile: Prometheus scrapes the three EMQX nodes, and EMQXNodeDown fires
    after a kill (alerts.yml: `for: 30s`, scrape every 10 s), from the real metrics."""
    lab = Lab(LabConfig(broker=emqx, profiles=("monitoring",)))
    lab.up()
    try:
        deadline = time.monotonic() + 60
        while True:  # all three scraped and up before the fault
            try:
                query = urllib.parse.urlencode({"query": 'up{job="emqx-liveness"}'})
                ups = _prometheus(f"/api/v1/query?{query}")["data"]["result"]
            except OSError:
                ups = []
            if len(ups) == 3 and all(r["value"][1] == "1" for r in ups):
                break
            assert time.monotonic() < deadline, ups
            time.sleep(2)
        lab.container("emqx-a2").kill()
        killed, deadline = time.monotonic(), time.monotonic() + 120
        while True:
            alerts = _prometheus("/api/v1/alerts")["data"]["alerts"]
            firing = [a for a in alerts if a["labels"]["alertname"] == "EMQXNodeDown"
                      and a["state"] == "firing"]
            if firing:
                break
            assert time.monotonic() < deadline, alerts
            time.sleep(2)
        took = time.monotonic() - killed
        print(f"EMQXNodeDown firing {took:.0f} s after the kill: {firing[0]['labels']}")
        assert 30 <= took <= 120  # not before its `for: 30s`
    finally:
        lab.down()


@pytest.mark.lab
def test_region_b_joins_and_wan_loss_is_injected_and_undone(lab_broker) -> None:
    """Region B's two nodes join across the WAN link, where nft drops packets (no netem here)."""
    from lab.faults import FaultGuard

    lab = Lab(LabConfig(broker=lab_broker, profiles=("region-b",)))
    lab.up()
    try:
        assert len(lab.brokers()) == 5 and lab.cluster_formed()
        sidecar = lab.container("wan-b1")
        with FaultGuard(lab) as guard:
            guard.apply("wan", "0.5")
            code, out = sidecar.exec_run(["nft", "list", "table", "inet", "twin"])
            assert code == 0 and b"drop" in out
        code, _ = sidecar.exec_run(["nft", "list", "table", "inet", "twin"])
        assert code != 0  # the rule is gone
    finally:
        lab.down()


STANDIN_LOAD_COSTS = ROOT / "models" / "calibration" / "standin-nats-load-2026-12-04.json"


@pytest.mark.lab
def test_small_load_on_the_standin_is_predicted_by_the_committed_costs(engine, tmp_path: Path) -> None:
    """CI's load: 5,000 clients, 1,250 messages/s in and out for 36 s (ci-small.toml) on the
    stand-in; the committed stand-in costs (made from other runs) predict each node's memory
    within 15 % and its CPU within 25 % (calibration/load_costs.py)."""
    from calibration.load_costs import CPU_BAR, MEMORY_BAR, markdown, validate_load
    from lab.load.runner import run_load
    from lab.load.scenario import load_load_scenario

    scenario = load_load_scenario(ROOT / "lab" / "scenarios" / "load" / "ci-small.toml")
    [summary] = run_load(scenario, tmp_path, "standin")
    g = summary["generator"]
    print(json.dumps({k: g[k] for k in ("connects", "sent", "recv", "overrun")}),
          g["connack_latency_s"], g["delivery_latency_s"])
    assert summary["valid"], summary["invalid"]
    assert g["connects"] >= 5000 and g["recv"] >= 0.99 * g["sent"]
    steady = [p for p in summary["points"] if p["window"] == "steady"]
    assert steady and all(p["t1"] - p["t0"] >= 30 for p in steady)
    assert sum(p["msgs_in_per_s"] for p in steady) >= 1000  # the lab's rate, over its nodes
    costs = json.loads(STANDIN_LOAD_COSTS.read_text())
    report = validate_load([summary], costs)
    print(markdown(costs, report))
    for r in report["rows"]:
        bar = MEMORY_BAR if r["resource"] == "memory" else CPU_BAR
        assert abs(r["rel_error"]) <= bar, r


@pytest.mark.lab
def test_interrupted_load_leaves_no_generator_container_or_fault(engine, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "lab", "load",
                             str(ROOT / "lab/scenarios/load/ci-small.toml"), "--broker", "standin",
                             "--out", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gen = tmp_path / "ci-small-0" / "gen-0.jsonl"
    deadline = time.monotonic() + 180
    while not (gen.exists() and gen.read_text().count('"ev":"sample"') >= 3):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the generators never started"
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    took = time.monotonic()
    proc.wait(timeout=120)
    took = time.monotonic() - took
    print(f"stopped {took:.1f} s after Ctrl-C")
    assert proc.returncode == 130
    pids = {json.loads(line)["pid"] for f in (tmp_path / "ci-small-0").glob("gen-*.jsonl")
            for line in f.read_text().splitlines() if '"ev":"step"' in line}
    assert len(pids) == 2
    for pid in pids:  # every generator process has ended
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert Lab(LabConfig(broker="standin")).containers() == []
    assert '"ev":"sample"' in gen.read_text()  # what was measured is on disk
