"""`twin bench --lab`: the load generator's capacity and cost beside the broker's, in one run.

* lab_clients_per_generator_process: clients one process connected and held (bench-generator.toml)
* lab_generator_cpu_s_per_1k_msgs: the process's CPU seconds per 1,000 messages (sent + received),
  over its idle CPU
* lab_broker_cpu_s_per_1k_msgs: the brokers' CPU seconds (all nodes) per 1,000 messages in + out,
  over their idle CPU: the generator should cost less, so that the broker is what saturates
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from lab.load.runner import run_load
from lab.load.scenario import load_load_scenario

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "load" / "bench-generator.toml"


def lab_benchmarks(broker: str = "standin") -> Iterator[tuple[str, float, str]]:
    s = load_load_scenario(SCENARIO)
    with tempfile.TemporaryDirectory() as tmp:
        [summary] = run_load(s, Path(tmp), broker)
    g = summary["generator"]
    steady = {(w["step"]): w for w in g["windows"] if w["window"] == "steady"}
    idle, busy = steady[0], steady[1]
    seconds = busy["t1"] - busy["t0"]
    pts = [p for p in summary["points"] if p["window"] == "steady"]
    msgs = sum(p["msgs_in_per_s"] + p["msgs_out_per_s"] for p in pts if p["step"] == 1)
    broker_idle = sum(p["cpu_cores"] for p in pts if p["step"] == 0)
    broker_busy = sum(p["cpu_cores"] for p in pts if p["step"] == 1)
    yield "lab_clients_per_generator_process", float(g["connects"] - g["disconnects"]), "clients"
    yield "lab_generator_valid_run", float(summary["valid"]), "bool"
    yield ("lab_generator_cpu_s_per_1k_msgs",
           (busy["cpu_share"] - idle["cpu_share"]) / (msgs / 1000) if msgs else float("nan"), "s")
    yield ("lab_broker_cpu_s_per_1k_msgs",
           (broker_busy - broker_idle) / (msgs / 1000) if msgs else float("nan"), "s")
    yield "lab_generator_idle_cpu_share_12k_clients", idle["cpu_share"], "cores"
    yield "lab_bench_steady_window_s", seconds, "s"
