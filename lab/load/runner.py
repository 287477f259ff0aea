"""Run a load scenario: the lab up, the node sampler, the generator processes, an optional kill,
and the summary. Ctrl-C / SIGTERM stop the generators (terminated after 5 s), undo the fault and
take the lab down: no client process, container or fault is left.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.cluster import Lab, LabConfig
from lab.faults import FaultGuard
from lab.lbconfig import LBSettings
from lab.load.generator import Plan, Step, generator_main
from lab.load.resources import NodeSampler
from lab.load.scenario import MAX_CLIENTS_VIA_LB, LoadScenario
from lab.load.summary import summarize

SCHEMA_VERSION = 1
START_DELAY_S = 2.0  # the processes start together this long after they were spawned


def _split(n: int, parts: int, i: int) -> int:
    return n // parts + (1 if i < n % parts else 0)


def plans(s: LoadScenario, run_id: str, endpoints: list[tuple[str, int]],
          sources: list[list[str]]) -> list[Plan]:
    """The scenario's totals split over its processes."""
    out = []
    for i in range(s.processes):
        steps = [Step(_split(st.subscribers, s.processes, i), _split(st.publishers, s.processes, i),
                      st.publish_per_s, _split(st.offline, s.processes, i), st.topics)
                 for st in s.steps]
        out.append(Plan(i, run_id, endpoints, sources[i], steps, s.step_s,
                        s.connect_rate_per_s / s.processes, s.keepalive_s, s.qos, s.payload_bytes))
    return out


def _endpoints(lab: Lab, s: LoadScenario) -> tuple[list[tuple[str, int]], list[list[str]]]:
    """Through the LB: its container address, not the published loopback port (docker-proxy,
    which serves that port, died at about 3,000 connections here); directly: each node's. The
    kernel picks the source, the bridge's address: about 28,000 ephemeral ports per destination,
    above the 9,000 that the LB's descriptors allow."""
    if s.target == "lb":
        return [(lab.lb_ip(), 1883)], [[""] for _ in range(s.processes)]
    ips = lab.broker_ips()
    return [(ip, 1883) for ip in ips.values()], [[""] for _ in range(s.processes)]


def run_load(s: LoadScenario, out: Path, broker: str = "standin", repeat: int | None = None,
             image: str | None = None, progress: Callable[[str, float], None] = lambda m, f: None
             ) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    # Through the LB, a killed node's clients are reset when the probe marks it down (2 s) and
    # reconnect to the survivors: the storm. Least connections: the survivors share it.
    lb = LBSettings(algorithm="least_connections", probe="tcp", interval_s=1.0, fall=2, on_down="reset",
                    maxconn=MAX_CLIENTS_VIA_LB + 500)
    lab = Lab(LabConfig(broker=broker, sessions=s.sessions, lb=lb, image=image))
    summaries = []
    try:
        for k in range(repeat or s.repetitions):
            progress(f"{s.name} #{k}: lab up", 0.0)
            lab.up()
            summaries.append(_run_once(lab, s, out, k, progress))
    finally:
        lab.down()
    return summaries


def _run_once(lab: Lab, s: LoadScenario, out: Path, k: int,
              progress: Callable[[str, float], None]) -> dict[str, Any]:
    run_dir = out / f"{s.name}-{k}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for f in run_dir.glob("*.jsonl"):
        f.unlink()
    run_id = f"l{int(time.time() * 1000) % 10**9}{k}"
    endpoints, sources = _endpoints(lab, s)
    meta = {"schema_version": SCHEMA_VERSION, "kind": "load", "scenario": s.name,
            "scenario_file": s.path, "repetition": k, "broker": lab.config.broker_version(),
            "standin": lab.config.standin, "sessions": s.sessions, "nodes": len(lab.brokers()),
            "target": s.target, "processes": s.processes, "qos": s.qos,
            "payload_bytes": s.payload_bytes, "keepalive_s": s.keepalive_s, "step_s": s.step_s,
            "connect_rate_per_s": s.connect_rate_per_s, "fault": s.fault,
            "fault_step": s.fault_step if s.fault != "none" else None,
            "steps": [st.__dict__ for st in s.steps], "node_limits": lab.node_limits(),
            "generator": "lab/load/generator.py: paho-mqtt external loop on asyncio",
            "message_counts": "broker" if lab.config.adapter.counts_mqtt_messages else "generator",
            "date": datetime.now(UTC).isoformat(timespec="seconds")}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    sampler = NodeSampler(lab, run_dir / "nodes.jsonl")
    sampler.start()
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + START_DELAY_S
    stop_at = start_at + s.duration_s
    procs = [ctx.Process(target=generator_main, name=f"load-gen-{p.index}", daemon=True,
                         args=(p, str(run_dir / f"gen-{p.index}.jsonl"), start_at, stop_at))
             for p in plans(s, run_id, endpoints, sources)]
    killed = ""
    try:
        with FaultGuard(lab) as guard:
            for p in procs:
                p.start()
            while any(p.is_alive() for p in procs) and time.time() < stop_at + 30:
                elapsed = time.time() - start_at
                step = int(elapsed // s.step_s) if elapsed >= 0 else -1
                if s.fault == "kill" and not killed and step >= s.fault_step:
                    killed = max(lab.brokers(), key=lambda n: sampler.last_connections(n))
                    guard.apply("kill", killed)
                    sampler.forget(killed)
                    with (run_dir / "nodes.jsonl").open("a") as f:
                        f.write(json.dumps({"ev": "fault", "t": time.time(), "what": "kill",
                                            "node": killed}) + "\n")
                progress(f"{s.name} #{k}: step {min(max(step, 0) + 1, len(s.steps))}/{len(s.steps)}"
                         + (f", {killed} killed" if killed else ""),
                         min(1.0, max(0.0, elapsed / s.duration_s)))
                time.sleep(0.5)
    finally:
        _stop(procs)
        sampler.stop()
    summary = summarize(run_dir, meta)
    (out / f"{s.name}-{k}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _stop(procs: list[multiprocessing.process.BaseProcess]) -> None:
    """Generators stop at their own deadline; on an interrupt they get 5 s, then SIGTERM/KILL."""
    deadline = time.monotonic() + 5
    for p in procs:
        p.join(timeout=max(0.1, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=2)
        if p.is_alive():
            p.kill()
            p.join()

