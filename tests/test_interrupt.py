"""Ctrl-C and SIGTERM stop a real `twin simulate` within 2 s and leave no worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_a_pooled_run_and_its_workers(sig: int, code: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "simulate", "models/renata-reference.toml",
         "--years", "100000", "--replications", "8", "--workers", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2:  # the pool's workers are running replications
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no workers started"
        time.sleep(0.2)
        workers = [c for c in _children(proc.pid) if "python" in Path(f"/proc/{c}/cmdline")
                   .read_bytes().decode(errors="replace")]
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # fails; a hung parent's workers must not run on (once did)
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        raise
    finally:
        proc.kill()
    took = time.monotonic() - sent
    err = proc.stderr.read().strip().splitlines()
    print(f"signal {sig}: exit {rc} after {took:.2f} s; stderr {err}")
    assert rc == code and took < 2.0
    assert len(err) == 1 and err[0].startswith("twin: ") and "Traceback" not in err[0]
    time.sleep(0.5)
    assert not [w for w in workers if _alive(w)]  # no worker outlived the run


def test_a_killed_worker_gives_one_line_naming_the_replication() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin.cli", "simulate", "models/renata-reference.toml",
         "--years", "100000", "--replications", "8", "--workers", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (workers := _children(proc.pid)):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(workers[0], signal.SIGKILL)
    try:
        rc = proc.wait(timeout=20)
    finally:
        proc.kill()
    err = proc.stderr.read().strip().splitlines()
    print(rc, err)
    assert rc == 1 and len(err) == 1
    # one line naming what the worker ran: a replication, or a transient pool built before them
    assert err[0].startswith(("twin: replication ", "twin: a transient pool's worker")) \
        and "worker process died" in err[0]


def test_a_blocked_unwind_is_ended_after_the_grace_time() -> None:
    """Where unwinding blocks (an interrupt inside a process pool's locks: once in CI), the
    watchdog armed by the signal ends the process's workers and leaves with the signal's code."""
    code = ("import multiprocessing, os, time, twin.cli as cli\n"
            "cli._grace_s = 0.5\n"
            "child = multiprocessing.Process(target=time.sleep, args=(60,)); child.start()\n"
            "print(child.pid, flush=True)\n"
            "cli._watchdog('twin: interrupted (Ctrl-C); stopped', 130)\n"
            "time.sleep(30)  # the blocked unwind\n")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 130 and time.monotonic() - start < 5
    assert out.stderr.strip() == "twin: interrupted (Ctrl-C); stopped"
    time.sleep(0.5)
    assert not _alive(int(out.stdout.split()[0]))
