"""Command-line refusals that must come before any work: one line, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REF = str(ROOT / "models" / "renata-reference.toml")
CAL = str(ROOT / "models" / "calibration" / "emqx-5.8.9-2026-11-27.json")
HELD = str(ROOT / "models" / "calibration" / "emqx-5.8.9-2026-11-27-held-out")


def _twin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["sweep", REF, "--set", "cluster.nodes=3,4", "--csv", "/proc/twin-test.csv"],
     "/proc/twin-test.csv: cannot write"),
    (["sweep", REF, "--set", "cluster.nodes=3,4", "--csv", "/tmp"], "/tmp: cannot write"),
    (["compare", REF], "compare: give at least two topology files"),
    (["capacity", REF, "--devices", "1000", "--csv", "/proc/twin-test.csv"],
     "/proc/twin-test.csv: cannot write"),
    (["capacity", REF, "--vm", "D3s_v9"], "'D3s_v9': allowed D4s_v5, D8s_v5, D16s_v5, D32s_v5"),
    (["capacity", REF, "--devices", "0"], "'0': expected whole numbers >= 1"),
    (["capacity", REF, "--devices", "200000000", "--vm", "D8s_v5"],
     "--devices 200,000,000: at most 100,000,000"),
    (["capacity", REF, "--vm", "D8s_v5", "--prices", "/nonexistent.toml"],
     "--prices /nonexistent.toml: no such file"),
    (["capacity", REF, "--vm", "D8s_v5", "--prices", str(ROOT / "tests" / "data" / "bad-prices.toml")],
     "price.D9s = 3: a VM of D4s_v5"),
    (["capacity", REF, "--cautious"], "--prices / --cautious: only with --vm"),
    (["capacity", REF, "--max-nodes", "65", "--vm", "D8s_v5"], "--max-nodes 65: at most 64"),
    # validate replays for tens of seconds: its outputs are checked first
    (["validate", HELD, "--calibration", CAL, "--json", "/proc/twin-test.json"],
     "/proc/twin-test.json: cannot write"),
    (["validate", HELD, "--calibration", CAL, "--plots", "/proc/twin-test"],
     "/proc/twin-test/validation_cdf.png: cannot write"),
    (["validate", HELD, "--calibration", "/nonexistent.json"], "--calibration /nonexistent.json: not a"),
    (["validate", "/nonexistent", "--calibration", CAL], "/nonexistent: no such file or folder"),
    (["calibrate", str(ROOT / "README.md"), "--out", "/tmp/twin-test.json"], "README.md: not JSON"),
    (["calibrate", HELD, "--out", "/proc/twin-test.json"], "/proc/twin-test.json: cannot write"),
    (["sensitivity", REF, "--csv", "/proc/twin-test.csv"], "/proc/twin-test.csv: cannot write"),
    (["review", str(ROOT / "models" / "renata-claims.toml"), "--markdown", "/proc/twin-test.md"],
     "/proc/twin-test.md: cannot write"),
    (["review", REF], "review: Field required"),
    (["sweep", REF, "--set", "nonsense.key=3"], "nonsense.key: unknown key"),
    # the lab: refused before Docker is touched
    (["lab", "run", str(ROOT / "lab" / "scenarios" / "crash.toml"), "--out", "/proc/twin-test"],
     "/proc/twin-test/crash-0.json: cannot write"),
    (["lab", "run", str(ROOT / "lab" / "scenarios" / "crash.toml"), "--repeat", "0"], "0 must be >= 1"),
    (["lab", "run", "/nonexistent.toml"], "/nonexistent.toml: no such file"),
])
def test_a_bad_argument_is_refused_before_any_simulation(args: list[str], message: str) -> None:
    start = time.monotonic()
    r = _twin(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert time.monotonic() - start < 30  # no simulation ran (one takes minutes)


@pytest.mark.parametrize("args", [["--help"], ["compare", "--help"], ["lab", "load", "--help"],
                                  ["bench", "--help"]])
def test_help_prints(args: list[str]) -> None:
    r = _twin(*args)
    assert r.returncode == 0 and "usage: twin" in r.stdout, r.stderr


def test_a_claim_naming_no_figure_is_refused_before_the_review_runs(tmp_path: Path) -> None:
    """The first run of a review takes minutes: a mistyped path must stop it at the start."""
    text = (ROOT / "models" / "renata-claims.toml").read_text(encoding="utf-8")
    models = ROOT / "models"
    text = text.replace('topology = "renata-reference.toml"', f'topology = "{models / "renata-reference.toml"}"')
    text = text.replace('calibration = "calibration/', f'calibration = "{models / "calibration"}/')
    bad = text.replace('path = "capacity.n_minus_1.peak_reconnects_per_s"',
                       'path = "capacity.n_minus_1.peak_reconects_per_s"')
    assert bad != text
    claims = tmp_path / "claims.toml"
    claims.write_text(bad, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "twin.cli", "review", str(claims)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "TWIN_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2, r.stderr
    assert "claim alert-rates: path = 'capacity.n_minus_1.peak_reconects_per_s': no such figure" \
        in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "review" not in r.stdout  # no verdict table: nothing was reviewed


def test_a_negative_flip_steps_is_refused() -> None:
    r = _twin("sensitivity", REF, "--flip-steps", "-1")
    assert r.returncode == 2 and "-1 must be >= 0" in r.stderr, r.stderr


def test_capacity_of_a_topology_sized_by_vcpu_plans_catalogue_sizes(tmp_path: Path) -> None:
    top = tmp_path / "sized.toml"
    top.write_text(f'extends = "{REF}"\n[meta]\nname = "sized"\n[cluster]\nvcpu = 8\n'
                   'memory_gib = 32\n', encoding="utf-8")
    r = _twin("capacity", str(top), "--devices", "100000", "--vm", "D8s_v5",
              "--plot", str(tmp_path / "plan.png"))
    assert r.returncode == 0, r.stderr
    assert "cluster.vcpu = 8, cluster.memory_gib = 32" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("100,000"))
    assert row.split()[:4] == ["100,000", "D8s_v5", "2", "3"], row  # N-1: 2 nodes, N-2: 3
    assert (tmp_path / "plan.png").is_file()
