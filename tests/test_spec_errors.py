"""Bad specs: one line naming the key, exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """
[meta]
name = "t"
[cluster]
nodes = 3
min_nodes_up = 2
[node.failure.crash]
mtbf_hours = 100
repair = { dist = "exponential", mean_s = 30 }
[lb]
algorithm = "least_connections"
"""

# (what is wrong, replacement (old, new) applied to GOOD, text the message must contain)
CASES = [
    ("missing required table", ("[cluster]\nnodes = 3\nmin_nodes_up = 2\n", ""), "cluster: missing"),
    ("missing key", ("name = \"t\"", ""), "meta.name: missing"),
    ("negative rate", ("mtbf_hours = 100", "mtbf_hours = -5"), "node.failure.crash.mtbf_hours = -5"),
    ("zero nodes", ("nodes = 3", "nodes = 0"), "cluster.nodes = 0"),
    ("unknown distribution", ("dist = \"exponential\"", "dist = \"pareto\""), "unknown distribution"),
    ("min_nodes_up > nodes", ("min_nodes_up = 2", "min_nodes_up = 4"), "cluster.min_nodes_up = 4"),
    ("wrong type", ("nodes = 3", "nodes = \"three\""), "cluster.nodes = 'three'"),
    ("unknown key", ("[lb]", "[lb]\nalgorithim = 1"), "lb.algorithim: unknown key; allowed here:"),
    ("unknown table", ("[lb]", "[loadbalancer]\nx = 1\n[lb]"), "loadbalancer: unknown key"),
    ("unknown failure mode", ("[node.failure.crash]", "[node.failure.meteor]"), "node.failure.meteor: unknown key"),
    ("unknown LB algorithm", ("\"least_connections\"", "\"fastest\""), "lb.algorithm = 'fastest'"),
    ("distribution missing its parameter", ("mean_s = 30", "sigma = 1"), "node.failure.crash.repair"),
    ("two TTFs", ("mtbf_hours = 100", "mtbf_hours = 100\nttf = { dist = \"exponential\", mean_hours = 5 }"),
     "mtbf_hours, ttf"),
    ("availability target above 1", ("[meta]", "[targets]\navailability = 1.5\n[meta]"), "targets.availability = 1.5"),
    ("NaN repair", ("mean_s = 30", "mean_s = nan"), "node.failure.crash.repair.mean_s = nan"),
    ("jitter not allowed", ("[lb]", "[clients]\nreconnect = { jitter = \"random\" }\n[lb]"),
     "clients.reconnect.jitter = 'random'"),
    ("replications below 2", ("[meta]", "[simulation]\nreplications = 1\n[meta]"), "simulation.replications = 1"),
    ("two regions without dr", ("[lb]", "[[regions]]\nname = \"a\"\n[[regions]]\nname = \"b\"\n[lb]"), "dr: required"),
    ("not TOML", ("[meta]", "[meta"), "not valid TOML"),
    ("negative weibull shape", ("dist = \"exponential\", mean_s = 30", "dist = \"weibull\", shape = -1, mean_s = 30"),
     "repair.shape = -1"),
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)


def test_good_spec_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    result = _run("check", str(path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("what, change, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_gives_one_line(tmp_path: Path, what: str, change: tuple[str, str], expected: str
                                 ) -> None:
    old, new = change
    assert old in GOOD
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new, 1))
    result = _run("simulate", str(path), "--years", "1", "--replications", "2", "--workers", "1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert str(path) in lines[0]


@pytest.mark.parametrize("args, expected", [
    (("simulate", "no/such/file.toml"), "no such file"),
    (("simulate", "models/renata-reference.toml", "--replications", "0"), "must be >= 1"),
    (("simulate", "models/renata-reference.toml", "--precision", "abc"), "is not a number"),
    (("simulate", "models/renata-reference.toml", "--replications", "1"), "must be >= 2"),
    (("bogus",), "invalid choice"),
])
def test_bad_command_line_gives_one_line(args: tuple[str, ...], expected: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
