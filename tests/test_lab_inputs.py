"""The lab's inputs without a broker: scenario files, the EMQX settings the harness passes through,
image choice, and refusals that come before Docker is touched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from calibration.results import load_results
from lab.brokers import EMQX_DS_DATABASES, EMQX_LOCAL_IMAGE, adapter
from lab.cluster import ROOT, LabConfig, LabError
from lab.scenario import load_scenario

SCENARIOS = sorted((ROOT / "lab" / "scenarios").glob("*.toml"))
CALIBRATION = ROOT / "models" / "calibration"
NO_ENGINE = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_loads(path: Path) -> None:
    s = load_scenario(path)
    assert s.name == path.stem
    if s.session_limit is not None:
        assert s.clients.subscribers + s.clients.publishers <= s.session_limit


def test_enterprise_scenario_passes_builtin_raft_through_to_every_database() -> None:
    s = load_scenario(ROOT / "lab" / "scenarios" / "crash-durable-ee.toml")
    config = LabConfig(broker="emqx", sessions=s.sessions, durable_storage=s.durable_storage,
                       image="emqx/emqx-enterprise:5.8.9")
    env = config.emqx_env()
    assert len(env) == 3 * len(EMQX_DS_DATABASES)
    for db in ("MESSAGES", "QUEUES"):
        assert env[f"EMQX_DURABLE_STORAGE__{db}__BACKEND"] == "builtin_raft"
        assert env[f"EMQX_DURABLE_STORAGE__{db}__N_SITES"] == "3"
        assert env[f"EMQX_DURABLE_STORAGE__{db}__REPLICATION_FACTOR"] == "3"
    assert config.broker_version() == "emqx/emqx-enterprise:5.8.9"
    # memory sessions and the stand-in pass nothing: EMQX keeps its own defaults
    assert LabConfig(broker="emqx", durable_storage=s.durable_storage).emqx_env() == {}
    assert LabConfig(broker="standin", sessions="durable",
                     durable_storage=s.durable_storage).emqx_env() == {}


def test_an_image_by_name_replaces_the_brokers_own() -> None:
    local = adapter("emqx-local")
    assert local.compose_env()["EMQX_IMAGE"] == os.environ.get("EMQX_IMAGE", EMQX_LOCAL_IMAGE)
    assert local.compose_env("my/emqx-ee:5.8.9")["EMQX_IMAGE"] == "my/emqx-ee:5.8.9"
    assert "my/emqx-ee:5.8.9" in local.required_images((), "my/emqx-ee:5.8.9")
    assert adapter("emqx").required_images() == []  # compose pulls them from Docker Hub
    assert "EMQX_IMAGE" not in adapter("standin").compose_env()
    with pytest.raises(LabError, match="image = 'x'.*only for an EMQX broker"):
        LabConfig(broker="standin", image="x")


def test_compose_passes_durable_storage_through_only_when_set() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed")
    env = {**os.environ, "EMQX_NODE__COOKIE": "t", "EMQX_DASHBOARD_PASSWORD": "t"}
    env.pop("EMQX_DURABLE_STORAGE__MESSAGES__BACKEND", None)
    args = [exe, "-f", "docker-compose.lab.yml", "config"]
    unset = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "EMQX_DURABLE_STORAGE__MESSAGES__BACKEND: null" in unset.stdout  # absent in the node
    env["EMQX_DURABLE_STORAGE__MESSAGES__BACKEND"] = "builtin_raft"
    set_ = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert set_.stdout.count("EMQX_DURABLE_STORAGE__MESSAGES__BACKEND: builtin_raft") == 5  # a1-b2


@pytest.mark.parametrize("edit, message", [
    (("publishers = 10", "publishers = 500000"),
     "clients.subscribers + clients.publishers = 500010: at most 2000"),
    (("publishers = 10", "publishers = 16"),
     "clients.subscribers + clients.publishers = 26: more than lab.session_limit = 25"),
    (('durable_backend = "builtin_raft"', 'durable_backend = "raft"'),
     "lab.durable_backend = 'raft': allowed builtin_local, builtin_raft"),
    (("durable_n_sites = 3", "durable_n_sites = 0"),
     "lab.durable_n_sites = 0: must be an integer in 1..15"),
    (("session_limit = 25", "session_limit = 25\nlicence = 1"), "lab: unknown key(s) ['licence']"),
])
def test_a_bad_scenario_is_refused_in_one_line_before_docker(tmp_path: Path, edit, message) -> None:
    """Run through the CLI with no reachable engine: the refusal must name the key, not Docker."""
    text = (ROOT / "lab" / "scenarios" / "crash-durable-ee.toml").read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    r = subprocess.run([sys.executable, "-m", "twin.cli", "lab", "run", str(bad), "--broker", "emqx",
                        "--out", str(tmp_path / "out")], cwd=ROOT, env=NO_ENGINE,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_image_on_the_standin_is_refused_before_docker() -> None:
    r = subprocess.run([sys.executable, "-m", "twin.cli", "lab", "up", "--broker", "standin",
                        "--image", "emqx/emqx:5.8.9"], cwd=ROOT, env=NO_ENGINE,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "only for an EMQX broker" in r.stderr, r.stderr


COMMITTED_EMQX_SETS = ["emqx-5.8.9-2026-11-27", "emqx-5.8.9-2026-12-04-tcp-probe",
                       "emqx-enterprise-5.8.9-2026-12-04-durable-crash"]


@pytest.mark.parametrize("name", COMMITTED_EMQX_SETS)
def test_committed_emqx_sets_read_as_lab_results_with_their_provenance(name: str) -> None:
    """EMQX data sets are committed as lab summaries (lab/SCHEMA.md), split into calibration and
    held-out runs; what the adapter read from EMQX at the fault is in each: where every client
    was, and each node's sessions held by that node while the cluster counted it running."""
    cal, held = CALIBRATION / f"{name}-calibration-runs", CALIBRATION / f"{name}-held-out"
    runs = load_results([cal]) + load_results([held])
    files = [*cal.glob("*.json"), *held.glob("*.json")]
    invalid = [f for f in files if json.loads(f.read_text()).get("valid") is False]
    assert runs and len(runs) == len(files) - len(invalid)  # the invalid ones left out, no other
    for r in runs:
        meta, origin = r["meta"], r["origin"]
        assert "emqx" in meta["broker"] and meta["standin"] is False
        assert origin["placement_known"] and origin["target_clients"] > 0
        nodes = {f"emqx-a{i}" for i in (1, 2, 3)}
        assert origin["roles"] == {f"sessions@{n}": n for n in nodes}
        assert set(origin["roles_elected_s"]) <= {f"sessions@{meta['target']}"}
    if name != "emqx-5.8.9-2026-11-27":
        provenance = (CALIBRATION / f"{name}.md").read_text()
        assert "Provenance" in provenance and all(Path(f).stem in provenance for f in files)


def test_enterprise_durable_runs_kept_their_sessions() -> None:
    """What the Enterprise set shows (FACTS: builtin_raft, 3 replicas): every session survived
    the crash, within the evaluation licence's 25 sessions; the run whose subscriptions never
    worked (the fleet's bug, fixed since) is invalid and left out of what calibration reads."""
    name = "emqx-enterprise-5.8.9-2026-12-04-durable-crash"
    runs = load_results([CALIBRATION / f"{name}-calibration-runs", CALIBRATION / f"{name}-held-out"])
    assert sorted(Path(r["meta"]["source_file"]).stem for r in runs) == [
        "crash-durable-ee-0", "crash-durable-ee-b0", "crash-durable-ee-b1", "crash-durable-ee-b2"]
    for r in runs:
        assert r["meta"]["sessions"] == "durable" and r["clients"]["seen"] <= 25
        assert r["sessions"]["present_ratio"] == 1.0 and r["messages"]["acknowledged_lost"] <= 10

