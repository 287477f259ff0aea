"""Scenarios as declarative TOML files: which fault, on which node, when, with which clients.

```toml
[scenario]
name = "crash"
fault = "kill"                 # lab/faults.py FAULTS
target = "most_subscribers"    # or a service name ("emqx-a2"), "random", "lb-a", "region-a",
                               # "session_store_leader" / "session_store_follower" (stand-in only)
warmup_s = 8                   # clients connected and publishing before the fault
fault_s = 10                   # how long the fault holds before it is undone
recover_s = 25                 # after the undo, before the fleet stops
drain_s = 5                    # publishing stopped, deliveries still counted
undo = "during_run"            # or "after_run": measure with the fault still in force, undo at the end
repetitions = 1
[clients]                      # lab/fleet.py FleetSettings
[lb]                           # lab/lbconfig.py LBSettings (without backends)
[lab]
sessions = "memory"            # EMQX: durable_sessions.enable false (memory) or true (durable);
                               # stand-in: node-local (memory) or replicated (durable) streams
dist_net_ticktime_s = 120      # EMQX node.dist_net_ticktime: how long a silent node counts as up
durable_backend = "builtin_raft"   # EMQX durable storage (durable sessions only; Enterprise for
durable_n_sites = 3                # builtin_raft); absent: EMQX's own defaults
durable_replication_factor = 3
session_limit = 25             # refuse a fleet with more sessions (EMQX Enterprise's evaluation
                               # licence counts 25 across the cluster)
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from lab.brokers import DurableStorage
from lab.cluster import LabError
from lab.faults import FAULTS
from lab.fleet import FleetSettings
from lab.lbconfig import LBSettings


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str
    target: str = "most_subscribers"
    warmup_s: float = 8
    fault_s: float = 10
    recover_s: float = 25
    drain_s: float = 5
    undo: str = "during_run"
    repetitions: int = 1
    clients: FleetSettings = FleetSettings()
    lb: LBSettings = LBSettings()
    sessions: str = "memory"
    dist_net_ticktime_s: int = 120
    durable_storage: DurableStorage = DurableStorage()
    session_limit: int | None = None
    path: str = ""


# [lab] keys: integer bounds, or (None, None) for the ones checked apart.
LAB_KEYS: dict[str, tuple[int | None, int | None]] = {
    "sessions": (None, None), "dist_net_ticktime_s": (5, 600), "durable_backend": (None, None),
    "durable_n_sites": (1, 15), "durable_replication_factor": (1, 5), "session_limit": (1, 10_000_000)}


def _build(cls, table: dict[str, Any], where: str):
    allowed = {f.name for f in fields(cls)} - {"backends"}
    for key in table:
        if key not in allowed:
            raise LabError(f"{where}.{key}: unknown key; allowed here: {', '.join(sorted(allowed))}")
    try:
        return cls(**table)
    except (TypeError, ValueError) as err:
        raise LabError(f"{where}: {err}") from None


def read_tables(path: Path, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A scenario file's TOML, refusing a missing file, bad TOML or an unknown table in one line."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise LabError(f"{path}: not valid TOML: {err}") from None
    for key in data:
        if key not in allowed:
            raise LabError(f"{path}: {key}: unknown table; allowed: {', '.join(allowed)}")
    return data


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    data = read_tables(path, ("scenario", "clients", "lb", "lab"))
    sc = dict(data.get("scenario", {}))
    if "name" not in sc or "fault" not in sc:
        raise LabError(f"{path}: scenario.name and scenario.fault are required")
    if sc["fault"] not in FAULTS:
        raise LabError(f"{path}: scenario.fault = {sc['fault']!r}: allowed {', '.join(FAULTS)}")
    for key in ("warmup_s", "fault_s", "recover_s", "drain_s"):
        if key in sc and not (isinstance(sc[key], int | float) and 0 <= sc[key] <= 3600):
            raise LabError(f"{path}: scenario.{key} = {sc[key]!r}: must be a number in 0..3600")
    if "repetitions" in sc and not (isinstance(sc["repetitions"], int) and 1 <= sc["repetitions"] <= 100):
        raise LabError(f"{path}: scenario.repetitions = {sc['repetitions']!r}: must be 1..100")
    if sc.get("undo", "during_run") not in ("during_run", "after_run"):
        raise LabError(f"{path}: scenario.undo = {sc['undo']!r}: allowed during_run, after_run")
    lab_table = data.get("lab", {})
    sessions = lab_table.get("sessions", "memory")
    if sessions not in ("durable", "memory"):
        raise LabError(f"{path}: lab.sessions = {sessions!r}: allowed durable, memory")
    unknown = set(lab_table) - set(LAB_KEYS)
    if unknown:
        raise LabError(f"{path}: lab: unknown key(s) {sorted(unknown)}; allowed: {', '.join(LAB_KEYS)}")
    for key, (lo, hi) in LAB_KEYS.items():
        v = lab_table.get(key)
        if lo is not None and v is not None and not (
                isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
            raise LabError(f"{path}: lab.{key} = {v!r}: must be an integer in {lo}..{hi}")
    backend = lab_table.get("durable_backend")
    if backend not in (None, "builtin_local", "builtin_raft"):
        raise LabError(f"{path}: lab.durable_backend = {backend!r}: allowed builtin_local, builtin_raft")
    clients = _build(FleetSettings, data.get("clients", {}), f"{path}: clients")
    limit = lab_table.get("session_limit")
    if limit is not None and clients.subscribers + clients.publishers > limit:
        raise LabError(f"{path}: clients.subscribers + clients.publishers = "
                       f"{clients.subscribers + clients.publishers}: more than lab.session_limit = {limit}")
    lb = _build(LBSettings, data.get("lb", {}), f"{path}: lb")
    scenario = _build(Scenario, sc, f"{path}: scenario")
    durable = DurableStorage(backend, lab_table.get("durable_n_sites"),
                             lab_table.get("durable_replication_factor"))
    return Scenario(**{**scenario.__dict__, "clients": clients, "lb": lb, "sessions": sessions,
                       "dist_net_ticktime_s": lab_table.get("dist_net_ticktime_s", 120),
                       "durable_storage": durable, "session_limit": limit, "path": str(path)})
