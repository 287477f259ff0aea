"""Calibration from lab summaries (synthetic ones with known distributions; no Docker needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from sim.calibration import MIN_SAMPLES, CalibrationError, calibrate, load_results, validate
from sim.metrics import summarise
from sim.montecarlo import run
from sim.spec import load_spec


def _summary(fault: str, outages: np.ndarray, present: int = 10, reconnects: int = 10,
             lost: int = 0) -> dict:
    return {
        "meta": {"schema_version": 1, "scenario": fault, "scenario_file": f"{fault}.toml",
                 "repetition": 0, "broker": "synthetic", "standin": True, "sessions": "durable",
                 "lb": {"algorithm": "least_connections"}, "date": "2026-11-26T00:00:00+00:00",
                 "clients": {"subscribers": 30, "publishers": 30}, "fault": fault},
        "client_outages": outages.tolist(),
        "sessions": {"reconnects": reconnects, "present": present,
                     "present_ratio": present / reconnects},
        "messages": {"acknowledged_lost": lost, "duplicated": 3},
    }


def _write(tmp: Path, name: str, data: dict) -> Path:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_fit_recovers_a_known_lognormal(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x = rng.lognormal(mean=np.log(6.0), sigma=0.4, size=600)
    cal = calibrate(load_results([_write(tmp_path, "kill", _summary("kill", x, 9, 10, 2))]), "t")
    fit = cal["modes"]["crash"]["client_outage_s"]
    assert fit["family"] == "lognormal"
    sigma, _, scale = fit["params"]
    assert sigma == pytest.approx(0.4, rel=0.1) and scale == pytest.approx(6.0, rel=0.05)
    assert fit["ks"] < 0.05 and set(fit["alternatives"]) == {"lognormal", "gamma", "weibull",
                                                            "exponential"}
    assert cal["modes"]["crash"]["session_present_ratio"] == 0.9
    assert cal["modes"]["crash"]["acknowledged_lost_per_event"] == 2
    assert cal["provenance"]["standin"] is True


def test_too_few_samples_is_refused(tmp_path: Path) -> None:
    small = _summary("pause", np.ones(MIN_SAMPLES - 1))
    with pytest.raises(CalibrationError, match="at least 20"):
        calibrate(load_results([_write(tmp_path, "pause", small)]), "t")


def test_not_a_lab_summary_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(CalibrationError, match="not a lab summary"):
        load_results([bad])


def test_validate_on_held_out_runs_from_the_same_distribution(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    train = [_summary("kill", rng.gamma(3.0, 2.0, size=300)) for _ in range(3)]
    held = _summary("kill", rng.gamma(3.0, 2.0, size=300))
    paths = [_write(tmp_path, f"train{i}", t) for i, t in enumerate(train)]
    cal = calibrate(load_results(paths), "t")
    [row] = validate(load_results([_write(tmp_path, "held", held)]), cal)
    assert row["ks_distance"] < 0.1
    assert abs(row["rel_error"]["p50"]) < 0.15 and abs(row["rel_error"]["p95"]) < 0.15


def test_topology_with_calibration_uses_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    slow = _summary("kill", rng.lognormal(np.log(300.0), 0.1, size=200), present=0)
    cal = calibrate(load_results([_write(tmp_path, "kill", slow)]), "slow-crash")
    (tmp_path / "cal.json").write_text(json.dumps(cal))
    topo = tmp_path / "t.toml"
    topo.write_text((ROOT / "tests" / "data" / "small.toml").read_text()
                    + '\n[calibration]\nfile = "cal.json"\n')
    spec = load_spec(topo)
    summary = summarise(spec, run(spec, workers=1).results)
    assert summary["calibration"]["modes"] == ["crash"]
    assert summary["failover_seconds"]["node.crash"]["p50"] == pytest.approx(300, rel=0.1)
    plain = load_spec(ROOT / "tests" / "data" / "small.toml")
    base = summarise(plain, run(plain, workers=1).results)
    assert base["failover_seconds"]["node.crash"]["p50"] < 30


def test_cli_calibrate_and_validate(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    p = _write(tmp_path, "kill", _summary("kill", rng.gamma(3.0, 2.0, size=100)))
    out = tmp_path / "cal.json"
    r = subprocess.run([sys.executable, "-m", "twin.cli", "calibrate", str(p), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "crash: 100 outages" in r.stdout
    r = subprocess.run([sys.executable, "-m", "twin.cli", "validate", str(p), "--calibration",
                        str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "twin.cli", "calibrate", str(tmp_path / "nope"),
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
