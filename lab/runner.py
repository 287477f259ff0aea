"""Run a scenario against the lab: history as JSON lines while it runs, then the checker's summary.

Output per repetition in OUT: `<scenario>-<k>.jsonl` (the history) and `<scenario>-<k>.json`
(the summary, schema in lab/SCHEMA.md).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.brokers import SESSION_STORE_ROLE, get_json
from lab.cluster import Lab, LabConfig, LabError
from lab.faults import FaultGuard, heal, netem_available
from lab.fleet import TIMER_PHASE, TIMER_TICK_S, Fleet
from lab.history import HistoryWriter, read_history
from lab.recheck import summary_of
from lab.scenario import Scenario
from lab.summary_schema import SCHEMA_VERSION


def pick_target(lab: Lab, scenario: Scenario, subscribers_only: list[dict[str, str]] | None = None
                ) -> str:
    """`most_subscribers` uses the LB's session counts taken when only subscribers were
    connected (the LB cannot tell subscribers from publishers later)."""
    target = scenario.target
    if target == "most_subscribers":
        stats = [r for r in (subscribers_only or lab.lb_stats()) if r["status"].startswith("UP")]
        if not stats:
            raise LabError("no backend is UP: cannot choose the node with most subscribers")
        return max(stats, key=lambda r: (int(r["sessions"] or 0), r["name"]))["name"]
    if target == "random":
        return random.choice(lab.brokers())
    if target in ("session_store_leader", "session_store_follower"):
        # Whether the failed node led the session store decides how long survivors cannot open
        # sessions; calibration wants runs of both kinds.
        leader = lab.roles().get(SESSION_STORE_ROLE)
        if not leader:
            raise LabError(f"target = {target}: the brokers do not say who leads the session store "
                           f"({SESSION_STORE_ROLE}); only the stand-in does")
        if target == "session_store_leader":
            return leader
        counts = {r["name"]: int(r["sessions"] or 0) for r in subscribers_only or lab.lb_stats()}
        return max((b for b in lab.brokers() if b != leader), key=lambda b: (counts.get(b, 0), b))
    return target


class _Poller:
    """A daemon thread that calls `poll()` every `period_s` until stopped."""

    def __init__(self, h: HistoryWriter, name: str, period_s: float = 0.2) -> None:
        self.h, self.period_s = h, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.poll()

    def poll(self) -> None:
        raise NotImplementedError


class LBWatcher(_Poller):
    """Writes an `lb` record whenever HAProxy changes its mind about a backend (polled every
    0.2 s): when the LB took a node out and put it back is what the model's probe must match."""

    def __init__(self, lab: Lab, h: HistoryWriter) -> None:
        super().__init__(h, "lb-watcher")
        self.lab = lab
        self.last: dict[str, str] = {}

    def start(self) -> None:
        self._start()

    def poll(self) -> None:
        try:
            rows = self.lab.lb_stats()
        except OSError:  # the LB itself is the fault: nothing to read
            return
        for r in rows:
            up = r["status"].split()[0] if r["status"] else ""
            up = "UP" if up.startswith("UP") else "DOWN" if up.startswith(("DOWN", "MAINT")) else up
            if self.last.get(r["name"]) != up:
                self.last[r["name"]] = up
                self.h.write("lb", node=r["name"], status=up)


class RolesWatcher(_Poller):
    """After the fault, writes a `roles` record whenever the surviving brokers report different
    leaders (polled every 0.2 s from this host): when a survivor took over the session store is
    measured directly, even in runs whose clients never had to wait for it."""

    def __init__(self, lab: Lab, h: HistoryWriter) -> None:
        super().__init__(h, "roles-watcher")
        self.lab = lab
        self.urls: dict[str, str] = {}
        self.last: dict[str, str] | None = None

    def start(self, target: str) -> None:
        self.urls = self.lab.roles_urls(exclude=target)
        if self.urls:
            self._start()

    def poll(self) -> None:
        for url in self.urls.values():
            try:
                roles = self.lab.config.adapter.roles_of(get_json(url, self.lab.api_auth(), 0.5))
            except (OSError, ValueError):
                continue  # that survivor is busy or partitioned: ask the next
            if roles != self.last:
                self.last = roles
                self.h.write("roles", roles=roles)
            return


def run_once(lab: Lab, scenario: Scenario, out: Path, k: int,
             progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    history_path = out / f"{scenario.name}-{k}.jsonl"
    history_path.unlink(missing_ok=True)
    h = HistoryWriter(history_path)
    run_id = f"r{int(time.time() * 1000) % 10**9}{k}"
    meta = {
        "schema_version": SCHEMA_VERSION, "scenario": scenario.name,
        "scenario_file": scenario.path, "repetition": k,
        "broker": lab.config.broker_version(), "standin": lab.config.standin,
        "sessions": scenario.sessions, "dist_net_ticktime_s": lab.config.dist_net_ticktime_s,
        # broker-neutral (schema 2): the tick of a failure detector that releases a silent node's
        # sessions; None for a broker without one (the stand-in)
        "failure_detector_tick_s": None if lab.config.standin else lab.config.dist_net_ticktime_s,
        "lb": {k2: v for k2, v in asdict(scenario.lb).items()
                                             if k2 != "backends"},
        "clients": asdict(scenario.clients), "fault": scenario.fault, "undo": scenario.undo,
        "nodes": len(lab.brokers()), "client_timer_tick_s": TIMER_TICK_S,
        "client_timer_phase": TIMER_PHASE,
        "timings": {"warmup_s": scenario.warmup_s, "fault_s": scenario.fault_s,
                    "recover_s": scenario.recover_s, "drain_s": scenario.drain_s},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "kernel_netem": netem_available(),
    }
    if lab.config.emqx_env():  # EMQX settings passed through (durable storage)
        meta["emqx_env"] = lab.config.emqx_env()
    h.write("meta", **meta)
    host, port = lab.endpoint()
    fleet = Fleet(host, port, scenario.clients, h, run_id)
    target = ""
    watcher = LBWatcher(lab, h)
    roles_watcher = RolesWatcher(lab, h)
    try:
        progress(f"{scenario.name} #{k}: connecting {scenario.clients.subscribers} subscribers, "
                 f"{scenario.clients.publishers} publishers")
        snapshot: list[dict[str, str]] = []
        fleet.start(after_subscribers=lambda: snapshot.extend(lab.lb_stats()))
        watcher.start()
        time.sleep(scenario.warmup_s)
        with FaultGuard(lab) as guard:
            target = pick_target(lab, scenario, snapshot)
            roles, placement = lab.roles(), lab.placement()
            progress(f"{scenario.name} #{k}: {scenario.fault} {target}")
            h.write("fault", what=scenario.fault, target=target, phase="start", roles=roles,
                    placement=placement)
            guard.apply(scenario.fault, target)
            roles_watcher.start(target)
            time.sleep(scenario.fault_s)
            if scenario.undo == "during_run":
                guard.undo_all()
                h.write("fault", what=scenario.fault, target=target, phase="end")
                progress(f"{scenario.name} #{k}: recovering")
                time.sleep(scenario.recover_s)
            fleet.stop_publishing()
            time.sleep(scenario.drain_s)
            # with undo = "after_run" the guard undoes the fault here, after the measurement
    finally:
        watcher.stop()
        roles_watcher.stop()
        h.write("stop")
        fleet.stop()
        h.close()
    summary = summary_of(read_history(history_path))  # the meta and target are in the history
    (out / f"{scenario.name}-{k}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_scenario(scenario: Scenario, out: Path, repeat: int | None = None,
                 broker: str = "emqx-local", progress: Callable[[str], None] = lambda s: None,
                 image: str | None = None) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for k in range(repeat or scenario.repetitions):
        lab = Lab(LabConfig(broker=broker, sessions=scenario.sessions, lb=scenario.lb,
                            dist_net_ticktime_s=scenario.dist_net_ticktime_s, image=image,
                            durable_storage=scenario.durable_storage))
        repaired = heal(lab) if lab.containers() else []
        if repaired:
            progress("healed: " + ", ".join(repaired))
        progress(f"{scenario.name} #{k}: lab up")
        lab.up()
        summaries.append(run_once(lab, scenario, out, k, progress))
    return summaries
