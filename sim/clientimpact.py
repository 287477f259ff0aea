"""What the long-run model's node events cost clients: each event draws a transient from its pool
(sim/pools.py) and its client-seconds, lost sessions and messages are accounted here; and the
capacity figures after N-1 / N-2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.longrun import NodeEvent, ReplicationResult
from sim.pools import POOL_SALT, SAMPLE_PER_REPLICATION, PoolEntry, pool, region_clients, scenario_for, spec_id
from sim.resources import survivor_resources
from sim.spec import Spec
from sim.transient import HORIZON_CAP_S, simulate


@dataclass
class ClientImpact:
    """Online accumulator: the long-run model calls it at each node event."""

    spec: Spec
    rng: np.random.Generator
    client_seconds: float = 0.0
    sessions_lost: int = 0
    qos1_lost: float = 0.0
    qos0_lost: float = 0.0
    duplicates: float = 0.0
    cascades: int = 0
    events: int = 0
    client_seconds_by_cause: dict[str, float] = field(default_factory=dict)
    # (cause, region, nodes up before) -> how often each pool entry was drawn
    drawn: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)
    _pools: dict[tuple[str, int, int], list[PoolEntry]] = field(default_factory=dict)
    # Events whose pools cannot cascade are accounted in batches (`flush`), the same draws in
    # the same order as one at a time: a Python call per event was half a replication's time.
    _pending: list[tuple[str, int, int]] = field(default_factory=list)
    _can_cascade: dict[tuple[str, int, int], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._clients = region_clients(self.spec)
        self._spec_key = spec_id(self.spec)

    def _can(self, key: tuple[str, int, int]) -> bool:
        """Can a draw from this key's pool cascade? (Loads the pool the first time.)"""
        cascades = self._can_cascade.get(key)
        if cascades is None:
            cause, region, up = key
            entries = self._pools[key] = pool(self.spec, region, cause, up, self._spec_key)
            cascades = self._can_cascade[key] = any(e.cascade for e in entries)
            self.drawn[key] = np.zeros(len(entries), dtype=np.int64)
        return cascades

    def __call__(self, event: NodeEvent) -> bool:
        """Account one event; True if it overloads a survivor into a cascade."""
        if not self._clients[event.region]:
            return False  # a standby region: nobody is connected there
        key = (event.cause, event.region, event.nodes_up_before)
        if not self._can(key):  # its draw cannot change the long run: later, with the others
            self._pending.append(key)
            return False
        self.flush()
        entries = self._pools[key]
        i = int(self.rng.integers(len(entries)))
        self._account([key], np.array([i]))
        return entries[i].cascade

    def replay(self, keys: list[tuple[str, int, int]]) -> bool:
        """Account the events of a recorded long run. False, with nothing accounted, if a draw
        could cascade here: the long run would then not be the recorded one."""
        live = [k for k in keys if self._clients[k[1]]]
        if any(self._can(k) for k in dict.fromkeys(live)):
            return False
        self._pending.extend(live)
        return True

    def flush(self) -> None:
        """Draw and account the pending events, in order."""
        keys, self._pending = self._pending, []
        if not keys:
            return
        # Every pool has POOL_SIZE entries; one call gives what a call per event gives (numpy's
        # bounded draws), the unpacking fails loudly should pools ever differ in size.
        (size,) = {len(self._pools[k]) for k in set(keys)}
        self._account(keys, self.rng.integers(size, size=len(keys)))

    def _account(self, keys: list[tuple[str, int, int]], draws: np.ndarray) -> None:
        if len(keys) == 1:  # one event (one that could cascade): plain additions, no arrays
            key, i = keys[0], int(draws[0])
            e = self._pools[key][i]
            self.events += 1
            self.client_seconds += e.client_seconds
            self.client_seconds_by_cause[key[0]] = (
                self.client_seconds_by_cause.get(key[0], 0.0) + e.client_seconds)
            self.sessions_lost += e.sessions_lost
            self.qos1_lost += e.qos1_lost
            self.qos0_lost += e.qos0_lost
            self.duplicates += e.duplicates
            self.cascades += e.cascade
            self.drawn[key][i] += 1
            return
        fields = ("client_seconds", "sessions_lost", "qos1_lost", "qos0_lost", "duplicates",
                  "cascade")
        distinct = list(dict.fromkeys(keys))
        code = {k: c for c, k in enumerate(distinct)}
        which = np.array([code[k] for k in keys])
        sizes = [len(self._pools[k]) for k in distinct]
        first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        table = np.array([[getattr(e, f) for f in fields] for k in distinct
                          for e in self._pools[k]], dtype=float)
        row = first[which] + draws
        rows = table[row]
        counts = np.bincount(row, minlength=len(table))
        for k, lo, n in zip(distinct, first.tolist(), sizes, strict=True):
            self.drawn[k] += counts[lo : lo + n]

        def total(start: float, values: np.ndarray) -> float:
            # a cumulative sum: the same additions in the same order as a loop over events
            return float(np.cumsum(np.concatenate(([start], values)))[-1])

        self.events += len(keys)
        self.client_seconds = total(self.client_seconds, rows[:, 0])
        self.sessions_lost += int(rows[:, 1].astype(np.int64).sum())
        self.qos1_lost = total(self.qos1_lost, rows[:, 2])
        self.qos0_lost = total(self.qos0_lost, rows[:, 3])
        self.duplicates = total(self.duplicates, rows[:, 4])
        self.cascades += int(rows[:, 5].sum())
        causes = list(dict.fromkeys(k[0] for k in distinct))
        cause_code = np.array([causes.index(k[0]) for k in distinct])[which]  # per event
        for c, cause in enumerate(causes):
            self.client_seconds_by_cause[cause] = total(
                self.client_seconds_by_cause.get(cause, 0.0), rows[cause_code == c, 0])

    def failover_samples(self) -> dict[str, np.ndarray]:
        """Per cause, a sample of client outages: every affected client of every event weighs
        the same."""
        self.flush()
        values: dict[str, list[np.ndarray]] = {}
        weights: dict[str, list[np.ndarray]] = {}
        for (cause, region, up), counts in sorted(self.drawn.items()):
            for e, c in zip(self._pools[(cause, region, up)], counts, strict=True):
                if c and len(e.outage_sample):
                    values.setdefault(cause, []).append(e.outage_sample)
                    weights.setdefault(cause, []).append(
                        np.full(len(e.outage_sample), c * e.affected / len(e.outage_sample)))
        out = {}
        for cause in sorted(values):
            v, w = np.concatenate(values[cause]), np.concatenate(weights[cause])
            out[cause] = self.rng.choice(v, size=SAMPLE_PER_REPLICATION, p=w / w.sum())
        return out


def attach_client_impact(spec: Spec, result: ReplicationResult, impact: ClientImpact | None
                         ) -> None:
    """Turn the accumulator into the replication's client metrics."""
    if impact is None or spec.clients.count == 0:
        return
    count = spec.clients.count
    result.client_failover_s = impact.failover_samples()
    service_down_s = float(result.downtime_s_per_year.sum())
    result.client_down_s = impact.client_seconds / count + service_down_s
    by_cause = {c: v / count for c, v in impact.client_seconds_by_cause.items()}
    for c, v in result.downtime_s_by_cause.items():  # everyone is cut off in a service outage
        by_cause[c] = by_cause.get(c, 0.0) + v
    result.client_down_s_by_cause = by_cause
    cl = spec.clients
    published = count * cl.subscriber_fraction * cl.publish_per_s * result.horizon_s
    if published > 0:
        lost = impact.qos1_lost if cl.qos >= 1 else (
            impact.qos0_lost + count * cl.publish_per_s * service_down_s)
        result.message_delivery = 1.0 - lost / published
    years = result.horizon_s / (365.25 * 86400)
    result.client_extra = {
        "qos1_lost_per_year": impact.qos1_lost / years,
        "duplicates_per_year": impact.duplicates / years,
        "sessions_lost_per_year": impact.sessions_lost / years,
        "cascades_per_year": impact.cascades / years,
        "cascade_probability_per_event": impact.cascades / impact.events if impact.events else 0.0,
    }


CAPACITY_MAX_CLIENTS = 200_000  # larger regions are simulated scaled down (fluid scaling)


def capacity_figures(spec: Spec) -> dict[str, dict[str, float | None]]:
    """Connections per survivor and peak reconnect rate after N-1 and N-2 crashes (largest
    region, fixed seed; full scale up to CAPACITY_MAX_CLIENTS clients), against the limits the
    transient used (the spec's, or those its node size and load costs give)."""
    clients = region_clients(spec)
    region = int(np.argmax(clients))
    n = spec.region_sizes()[region]
    scale = min(1.0, CAPACITY_MAX_CLIENTS / clients[region]) if clients[region] else 1.0
    out: dict[str, dict[str, float | None]] = {}
    for lost in (1, 2):
        if n - lost < 1 or not clients[region]:
            continue
        rng = np.random.default_rng(np.random.SeedSequence(spec.simulation.seed,
                                                           spawn_key=(POOL_SALT, 7, lost)))
        sc = scenario_for(spec, region, "node.crash", n - lost + 1, float("inf"), scale)
        r = simulate(sc, rng)
        survivors = [j for j in range(n) if j not in sc.failed and j not in sc.down_before]
        rate, over = sc.max_conn_rate_per_s, sc.overload_connections
        out[f"n_minus_{lost}"] = {
            "connections_per_node_max": float(r.counts_after[survivors].max()) / scale,
            "connections_per_node_mean": float(r.counts_after[survivors].mean()) / scale,
            "peak_reconnects_per_s": float(r.peak_arrivals_per_s[survivors].max()) / scale,
            "max_conn_rate_per_s": None if rate is None else rate / scale,
            "overload_connections": None if over is None else round(over / scale),
            "cascade": bool(r.cascade),
            "never_back": round(int((r.outage_s >= HORIZON_CAP_S).sum()) / scale),
            "outage_p50_s": float(np.percentile(r.outage_s, 50)) if len(r.outage_s) else None,
            "outage_p95_s": float(np.percentile(r.outage_s, 95)) if len(r.outage_s) else None,
        }
        res = survivor_resources(spec, float(r.counts_after[survivors].max()) / scale)
        if res is not None:
            out[f"n_minus_{lost}"]["resources"] = res
    return out
