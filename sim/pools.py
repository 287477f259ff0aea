"""Failover transients drawn from pools per state class: a transient depends on the event kind and
the region's state (nodes up, clients, policies), not on the simulated year, so each distinct class
is simulated `POOL_SIZE` times once per run, from a seed derived from the class alone (the same
pool whichever worker builds it; the workers share them through a folder). DESIGN §1.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sim import source_fingerprint, write_atomic
from sim.resources import derived_limits
from sim.spec import Spec
from sim.transient import HORIZON_CAP_S, Scenario, TransientResult, simulate

POOL_SIZE = 16
SAMPLE_PER_ENTRY = 256  # client outages kept per pool entry for the failover percentiles
SAMPLE_PER_REPLICATION = 2000
POOL_SALT = 0x5EED
POOL_MAX_CLIENTS = 10_000  # larger regions are simulated scaled down (fluid scaling), see pool()


def mode_of(cause: str) -> tuple[str, int]:
    """Transient mode and number of nodes hit for a long-run event cause."""
    if cause.startswith("node."):
        return cause.removeprefix("node."), 1
    if cause == "maintenance":
        return "stop", 1
    if cause == "cascade":
        return "crash", 1
    return "vm", 1  # correlated events arrive one node at a time, silently


def region_clients(spec: Spec) -> list[int]:
    """Clients homed in each region: by weight when active-active, all in the first otherwise."""
    count = spec.clients.count
    if len(spec.region_sizes()) == 1:
        return [count]
    if spec.dr is not None and spec.dr.mode == "active_passive":
        return [count] + [0] * (len(spec.regions) - 1)
    weights = np.array([r.weight for r in spec.regions])
    shares = np.floor(count * weights / weights.sum()).astype(int)
    shares[0] += count - shares.sum()
    return shares.tolist()


def _repair_dist(spec: Spec, cause: str):
    modes = spec.node.failure.modes()
    if cause.startswith("node."):
        return modes[cause.removeprefix("node.")].repair.frozen()
    if cause == "maintenance" and spec.maintenance is not None:
        return spec.maintenance.per_node.frozen()
    if cause == "cascade" and "crash" in modes:
        return modes["crash"].repair.frozen()
    for c in spec.correlated:
        if cause == f"correlated.{c.name}":
            return c.repair.frozen()
    return None


def scenario_for(spec: Spec, region: int, cause: str, up_before: int, return_after_s: float,
                 scale: float = 1.0) -> Scenario:
    """The transient of `cause` in `region`; `scale` < 1 shrinks clients and every per-node
    capacity alike, which keeps each client's experience (fluid scaling)."""
    n = spec.region_sizes()[region]
    mode, hit = mode_of(cause)
    lb, cl, cluster = spec.lb, spec.clients, spec.cluster
    probe = lb.probe if lb is not None else None
    survivors = max(up_before - hit, 1)
    rate, overload, cpu_bound = derived_limits(spec, region_clients(spec)[region] / survivors,
                                               scale)
    backlog = UNBOUNDED_BACKLOG if cpu_bound else _scaled(cluster.listen_backlog, scale)
    return Scenario(
        nodes=n, failed=tuple(range(hit)), mode=mode,
        clients=max(1, round(region_clients(spec)[region] * scale)),
        down_before=tuple(range(up_before, n)), return_after_s=return_after_s,
        algorithm=lb.algorithm if lb else "round_robin",
        persistence=lb.persistence if lb else "none", sites=cl.sites,
        lb_holds_closed_s=lb.holds_closed_s if lb else 0.0,
        lb_connect_hold_s=lb.connect_hold_s if lb else 0.0,
        probe_protocol=probe.protocol if probe else "tcp",
        probe_interval_s=probe.interval_s if probe else 5.0,
        probe_threshold=probe.threshold if probe else 1,
        on_down=probe.on_down if probe else "continue",
        keepalive_s=cl.keepalive_s, connect_timeout_s=cl.connect_timeout_s,
        initial_s=cl.reconnect.initial_s, max_s=cl.reconnect.max_s,
        multiplier=cl.reconnect.multiplier, jitter=cl.reconnect.jitter,
        max_conn_rate_per_s=rate,
        listen_backlog=backlog,
        max_connections=_scaled(cluster.max_connections, scale),
        overload_connections=overload,
        sessions=cluster.sessions, replication_factor=cluster.replication_factor,
        evacuate=spec.maintenance.evacuate if spec.maintenance else False,
        qos=cl.qos, publish_per_s=cl.publish_per_s, subscriber_fraction=cl.subscriber_fraction,
    )


UNBOUNDED_BACKLOG = 2 ** 31  # sockets the acceptors took, waiting for CPU (not the kernel's queue)


def _scaled(value, scale: float, integer: bool = True):
    if value is None or scale == 1.0:
        return value
    return max(1, round(value * scale)) if integer else value * scale


@dataclass
class PoolEntry:
    client_seconds: float
    affected: int
    sessions_lost: int
    qos1_lost: float
    qos0_lost: float
    duplicates: float
    cascade: bool
    outage_sample: np.ndarray


def _entry(result: TransientResult, rng: np.random.Generator, scale: float) -> PoolEntry:
    out = result.outage_s
    sample = rng.choice(out, size=min(SAMPLE_PER_ENTRY, len(out)), replace=False) if len(out) \
        else np.empty(0)
    up = 1.0 / scale  # extensive figures back to the full region
    return PoolEntry(float(np.minimum(out, HORIZON_CAP_S).sum()) * up, round(len(out) * up),
                     round(int((~result.session_present).sum()) * up), result.qos1_lost * up,
                     result.qos0_lost * up, result.duplicates * up, result.cascade, sample)


_POOLS: dict[tuple, list[PoolEntry]] = {}


def transient_inputs(spec: Spec) -> str:
    """The spec without what no transient reads (names, targets, run length, how often things
    fail): designs that differ only there share their pools."""
    data = spec.model_dump(mode="json", exclude={"meta", "targets", "uncertainty"})
    data["simulation"] = {"seed": spec.simulation.seed}
    for mode in data["node"]["failure"].values():
        if mode:
            mode.pop("mtbf_hours", None)
            mode.pop("ttf", None)
            mode.pop("redundancy", None)
    if data.get("lb"):
        data["lb"].pop("failure", None)
        for key in ("holds_closed_s", "connect_hold_s"):  # keys added later: at their default,
            if not data["lb"][key]:  # a design keeps its pools (and its figures)
                data["lb"].pop(key)
    for region in data.get("regions", []):
        region.pop("outage", None)
    for c in data.get("correlated", []):
        c.pop("mtbf_hours", None)
    if data.get("maintenance"):
        data["maintenance"].pop("interval_days", None)
    return json.dumps(data, sort_keys=True)


def spec_id(spec: Spec) -> int:
    return zlib.crc32(transient_inputs(spec).encode())


# Where this process shares pools with the run's other workers (montecarlo.run sets it per run).
RUN_POOL_DIR: str | None = None


def _disk_pool(spec: Spec, cls: tuple, build) -> list[PoolEntry]:
    """Pools on disk when TWIN_POOL_CACHE names a folder (studies set it; else the run's own
    folder): every process and every later run of a design with the same transient inputs loads
    them instead of simulating. A lock per pool: a worker that needs a pool another is building
    waits for it rather than building it twice."""
    folder = os.environ.get("TWIN_POOL_CACHE") or RUN_POOL_DIR
    if not folder:
        return build()
    h = hashlib.sha256((transient_inputs(spec) + repr(cls) + source_fingerprint()).encode()).hexdigest()[:32]
    path = Path(folder) / f"{h}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            try:
                return pickle.loads(path.read_bytes())
            except (OSError, pickle.UnpicklingError, EOFError):
                pass  # a torn file: build it again
        entries = build()
        write_atomic(path, pickle.dumps(entries))
    return entries


def common_pool_classes(spec: Spec) -> list[tuple[int, str, int]]:
    """(region, cause, nodes up before) of the pools nearly every run draws from: each node-event
    cause with all nodes up or one down, once per kind of region (size, clients). Built before the
    replications, spread over the workers; rarer states are built when first needed (building
    those too made the reference's run 12 s slower: most of them were never drawn)."""
    causes = [f"node.{m}" for m in spec.node.failure.modes()]
    causes += ["maintenance"] if spec.maintenance else []
    causes += [f"correlated.{c.name}" for c in spec.correlated]
    seen, out = set(), []
    for region, (n, clients) in enumerate(zip(spec.region_sizes(), region_clients(spec), strict=True)):
        if clients and (n, clients) not in seen:
            seen.add((n, clients))
            out += [(region, cause, up) for cause in causes for up in (n, n - 1) if up >= 1]
    return out


def build_pool(spec: Spec, region: int, cause: str, up_before: int, pool_dir: str | None) -> None:
    """A worker task: one pool, into the run's folder."""
    global RUN_POOL_DIR
    RUN_POOL_DIR = pool_dir
    pool(spec, region, cause, up_before)


_CALIBRATIONS: dict[str, dict] = {}


# A VM lost without a word looks to the cluster like a partition (no TCP close, no nodedown until
# the tick time runs out): with `use = "mechanism"` it takes the partition's measured behaviour.
MECHANISM_OF = {"vm": "partition"}


def calibrated_mode(spec: Spec, cause: str) -> dict | None:
    """The lab-fitted values for this cause's failure mode, if the topology names a calibration."""
    if spec.calibration is None:
        return None
    path = spec.calibration.file
    if path not in _CALIBRATIONS:
        import json

        _CALIBRATIONS[path] = json.loads(Path(path).read_text())
    mode = mode_of(cause)[0]
    if spec.calibration.use == "mechanism":
        mode = MECHANISM_OF.get(mode, mode)
    return _CALIBRATIONS[path]["modes"].get(mode)


def mechanism_scenario(spec: Spec, sc: Scenario, fitted: dict, rng: np.random.Generator
                       ) -> Scenario:
    """The transient with the broker behaviour the lab measured (`use = "mechanism"`): survivors
    hold, refuse or drop CONNECTs until the cluster counts the failed node down, a window that
    EMQX's failure detector sets, so it scales with this topology's tick time for silent
    failures; the lab's CONNACK latency."""
    from sim.calibration_file import refuse_again_p, refuse_p, store_wait_s
    from sim.transient import SILENT

    mech = fitted["mechanism"]
    store = mech.get("session_store") or {"down_s": {}, "wait_s": 0.0}
    windows = store.get("release_pooled_s") or [w for ws in store["down_s"].values() for w in ws]
    lab_tick = fitted.get("lab_dist_net_ticktime_s")
    scale = spec.cluster.dist_net_ticktime_s / lab_tick if lab_tick and sc.mode in SILENT else 1.0
    latency = mech.get("connack_latency_s") or {}
    return replace(sc, session_store_down_s=float(rng.choice(windows)) * scale if windows else 0.0,
                   session_store_wait_s=store_wait_s(store),
                   session_store_refuse_p=refuse_p(store, rng),
                   session_store_refuse_again_p=refuse_again_p(store),
                   session_store_release_drop_p=store.get("release_drop_p", 0.0),
                   connack_latency_s=float(latency.get("median", 0.0)))


def _calibrated_entry(spec: Spec, region: int, up_before: int, fitted: dict,
                      rng: np.random.Generator) -> PoolEntry:
    from sim.calibration_file import draw

    affected = round(region_clients(spec)[region] / up_before)
    outage = draw(fitted["client_outage_s"], affected, rng) if affected else np.empty(0)
    ratio = fitted["session_present_ratio"] or 0.0
    lost_sessions = int(rng.binomial(affected, 1 - ratio)) if affected else 0
    cl = spec.clients
    subs = affected * cl.subscriber_fraction
    lab_subs_per_node = max(1.0, fitted.get("lab_subscribers_per_node", 10.0))
    qos1 = fitted["acknowledged_lost_per_event"] * subs / lab_subs_per_node
    dups = fitted["duplicates_per_event"] * subs / lab_subs_per_node
    qos0 = float(cl.publish_per_s * outage[: int(subs)].sum()) if cl.qos == 0 else 0.0
    sample = rng.choice(outage, size=min(SAMPLE_PER_ENTRY, affected), replace=False) \
        if affected else np.empty(0)
    # Clients of the surviving nodes that the broker dropped too (measured; no mechanism).
    coll = fitted.get("collateral") or {}
    others = region_clients(spec)[region] - affected
    n_coll = int(rng.poisson(coll.get("outages_per_other_client", 0.0) * others)) if others > 0 else 0
    collateral_s = float(draw(coll.get("outage_s"), n_coll, rng).sum()) if n_coll else 0.0
    return PoolEntry(float(outage.sum()) + collateral_s, affected, lost_sessions, float(qos1), qos0,
                     float(dups), False, sample)


def pool(spec: Spec, region: int, cause: str, up_before: int, spec_key: int | None = None
         ) -> list[PoolEntry]:
    """The pool of transients of one state class (regions alike in size and clients share it)."""
    clients = region_clients(spec)[region]
    cls = (spec.region_sizes()[region], clients, cause, up_before)
    key = (spec_id(spec) if spec_key is None else spec_key, *cls)
    if key not in _POOLS:
        _POOLS[key] = _disk_pool(spec, cls, lambda: _build_pool(spec, region, cause, up_before, cls,
                                                                 clients))
    return _POOLS[key]


def _build_pool(spec: Spec, region: int, cause: str, up_before: int, cls: tuple, clients: int
                ) -> list[PoolEntry]:
    rng = np.random.default_rng(np.random.SeedSequence(
        spec.simulation.seed, spawn_key=(POOL_SALT, zlib.crc32(repr(cls).encode()))))
    repair = _repair_dist(spec, cause)
    scale = min(1.0, POOL_MAX_CLIENTS / clients) if clients else 1.0
    entries = []
    fitted = calibrated_mode(spec, cause)
    mechanism = fitted is not None and spec.calibration is not None \
        and spec.calibration.use == "mechanism"
    for _ in range(POOL_SIZE if fitted is None or mechanism else 0):
        back = float(repair.rvs(random_state=rng)) if repair is not None else float("inf")
        sc = scenario_for(spec, region, cause, up_before, back, scale)
        if mechanism:
            sc = mechanism_scenario(spec, sc, fitted, rng)
        entry = _entry(simulate(sc, rng), rng, scale)
        if mechanism:  # loss the lab saw that the mechanism does not explain, per subscriber
            subs = max(1.0, fitted.get("lab_subscribers_per_node", 10.0))
            entry.qos1_lost += max(0.0, fitted.get("acknowledged_lost_residual_per_event") or 0.0) \
                * entry.affected * spec.clients.subscriber_fraction / subs
        entries.append(entry)
    if fitted is not None and not mechanism:
        entries = [_calibrated_entry(spec, region, up_before, fitted, rng)
                   for _ in range(POOL_SIZE)]
    return entries
