"""Load scenarios (lab/scenarios/load/*.toml): steps of clients and rates, checked against what
this machine can generate before Docker is touched.

```toml
[load]
name = "steps"
processes = 2                 # generator processes (each one asyncio loop of paho clients)
target = "nodes"              # "nodes": each broker directly, round robin; "lb": through HAProxy
connect_rate_per_s = 500      # new connections per second, all processes together
step_s = 40                   # each step: its ramp, then a steady window (at least half the step)
qos = 0                       # 0, 1 or 2
payload_bytes = 128
keepalive_s = 60
fault = "none"                # or "kill": a reconnect storm, the node with most connections
fault_step = 2                # ... killed when this step starts (it stays down)
repetitions = 1
[[steps]]                     # totals over the processes; a later step keeps what it does not raise
subscribers = 1000
publishers = 1000
publish_per_s = 1.0           # per publisher
offline = 0                   # persistent sessions that subscribe, then go offline
topics = 0                    # per process: 0 = one per subscriber
[lab]
sessions = "memory"
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.cluster import LabError
from lab.load.generator import Step
from lab.scenario import read_tables

# What one generator process and this machine were measured to sustain (`twin bench`,
# lab_clients_per_generator_process; docs/lab.md): beyond them a run would measure the generator.
MAX_CLIENTS_PER_PROCESS = 12_000  # and the 20,000 descriptors per process this sandbox allows
MAX_CLIENTS_PER_NODE = 18_000  # each container's descriptor limit (20,000; dockerd's own)
MAX_CLIENTS_VIA_LB = 9_000  # HAProxy holds two descriptors per connection
MAX_MESSAGES_PER_S = 20_000  # in + out, the whole lab, 2 cores shared with the brokers
MAX_PROCESSES = 8
MAX_RUN_S = 3600


@dataclass(frozen=True)
class LoadScenario:
    name: str
    steps: tuple[Step, ...]
    processes: int = 2
    target: str = "nodes"
    connect_rate_per_s: float = 500.0
    step_s: float = 40.0
    qos: int = 0
    payload_bytes: int = 128
    keepalive_s: int = 60
    fault: str = "none"
    fault_step: int = 1
    repetitions: int = 1
    sessions: str = "memory"
    nodes: int = 3
    path: str = ""

    @property
    def duration_s(self) -> float:
        return self.step_s * len(self.steps)

    def max_clients(self) -> int:
        return max(s.subscribers + s.publishers + s.offline for s in self.steps)

    def messages_per_s(self, step: Step) -> float:
        """In + out: every message goes to one topic; topics = subscribers unless set."""
        topics = step.topics * self.processes if step.topics else max(1, step.subscribers)
        fan_out = max(1.0, (step.subscribers + step.offline) / topics)
        rate_in = step.publishers * step.publish_per_s
        return rate_in * (1 + fan_out)


LOAD_KEYS = {"name", "processes", "target", "connect_rate_per_s", "step_s", "qos", "payload_bytes",
             "keepalive_s", "fault", "fault_step", "repetitions"}
STEP_KEYS = {"subscribers", "publishers", "publish_per_s", "offline", "topics"}


def _number(where: str, v: Any, lo: float, hi: float, integer: bool = False) -> None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi
    if not ok or (integer and not isinstance(v, int)):
        kind = "an integer" if integer else "a number"
        raise LabError(f"{where} = {v!r}: must be {kind} in {lo:g}..{hi:g}")


def load_load_scenario(path: str | Path) -> LoadScenario:
    path = Path(path)
    data = read_tables(path, ("load", "steps", "lab"))
    ld = dict(data.get("load", {}))
    if "name" not in ld or not data.get("steps"):
        raise LabError(f"{path}: load.name and at least one [[steps]] are required")
    for key in ld:
        if key not in LOAD_KEYS:
            raise LabError(f"{path}: load.{key}: unknown key; allowed: {', '.join(sorted(LOAD_KEYS))}")
    where = f"{path}: load"
    for key, lo, hi, integer in (("processes", 1, MAX_PROCESSES, True),
                                 ("connect_rate_per_s", 1, 5000, False), ("step_s", 10, 600, False),
                                 ("payload_bytes", 64, 65536, True), ("keepalive_s", 5, 3600, True),
                                 ("repetitions", 1, 20, True), ("qos", 0, 2, True),
                                 ("fault_step", 0, 19, True)):
        if key in ld:
            _number(f"{where}.{key}", ld[key], lo, hi, integer)
    if ld.get("target", "nodes") not in ("nodes", "lb"):
        raise LabError(f"{where}.target = {ld['target']!r}: allowed nodes, lb")
    if ld.get("fault", "none") not in ("none", "kill"):
        raise LabError(f"{where}.fault = {ld['fault']!r}: allowed none, kill")
    steps = []
    for k, st in enumerate(data["steps"]):
        for key in st:
            if key not in STEP_KEYS:
                raise LabError(f"{path}: steps[{k}].{key}: unknown key; allowed: "
                               f"{', '.join(sorted(STEP_KEYS))}")
        for key in ("subscribers", "publishers", "offline", "topics"):
            _number(f"{path}: steps[{k}].{key}", st.get(key, 0), 0, 1_000_000, True)
        _number(f"{path}: steps[{k}].publish_per_s", st.get("publish_per_s", 0.0), 0, 1000)
        steps.append(Step(st.get("subscribers", 0), st.get("publishers", 0),
                          float(st.get("publish_per_s", 0.0)), st.get("offline", 0),
                          st.get("topics", 0)))
    if len(steps) > 20:
        raise LabError(f"{path}: {len(steps)} steps: at most 20")
    lab = data.get("lab", {})
    if set(lab) - {"sessions"} or lab.get("sessions", "memory") not in ("memory", "durable"):
        raise LabError(f"{path}: lab: only sessions = \"memory\" | \"durable\" is allowed here")
    s = LoadScenario(steps=tuple(steps), sessions=lab.get("sessions", "memory"), path=str(path),
                     **ld)
    check_machine(s)
    return s


def check_machine(s: LoadScenario) -> None:
    """Refuse what this machine cannot generate (one line naming the figure and the bound)."""
    where = f"{s.path}: load"
    per_process = -(-s.max_clients() // s.processes)
    if per_process > MAX_CLIENTS_PER_PROCESS:
        raise LabError(f"{where}: {s.max_clients()} clients over {s.processes} processes = "
                       f"{per_process} per process: at most {MAX_CLIENTS_PER_PROCESS} (raise "
                       "load.processes)")
    bound = MAX_CLIENTS_VIA_LB if s.target == "lb" else MAX_CLIENTS_PER_NODE * (
        s.nodes - (s.fault == "kill"))
    if s.max_clients() > bound:
        raise LabError(f"{where}: {s.max_clients()} clients with target = {s.target!r}"
                       f"{' and a node killed' if s.fault == 'kill' else ''}: at most {bound} here "
                       "(each container's 20,000 file descriptors)")
    for k, st in enumerate(s.steps):
        rate = s.messages_per_s(st)
        if rate > MAX_MESSAGES_PER_S:
            raise LabError(f"{s.path}: steps[{k}]: {rate:.0f} messages/s in + out: at most "
                           f"{MAX_MESSAGES_PER_S} on this machine")
        added = max(0, st.subscribers + st.publishers + st.offline
                    - (0 if k == 0 else sum(getattr(s.steps[k - 1], a)
                                            for a in ("subscribers", "publishers", "offline"))))
        if added / s.connect_rate_per_s > s.step_s / 2:
            raise LabError(f"{s.path}: steps[{k}]: {added} new clients at {s.connect_rate_per_s:g}/s "
                           f"take {added / s.connect_rate_per_s:.0f} s: more than half of "
                           f"load.step_s = {s.step_s:g} (no steady window left)")
    if s.duration_s * s.repetitions > MAX_RUN_S:
        raise LabError(f"{where}: {len(s.steps)} steps x {s.step_s:g} s x {s.repetitions}: more "
                       f"than {MAX_RUN_S} s")
    if s.fault == "kill" and s.target != "lb":
        raise LabError(f"{where}.fault = 'kill' needs load.target = 'lb': connected straight to "
                       "the nodes, clients cannot find the survivors")
    if s.fault == "kill" and not 0 < s.fault_step < len(s.steps):
        raise LabError(f"{where}.fault_step = {s.fault_step}: must name a step after the first "
                       f"(1..{len(s.steps) - 1})")
