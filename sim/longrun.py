"""The long-run model: SimPy processes for failures, repairs, maintenance, LBs, regions and DR.

Time is in seconds. A component's failure clocks run only while it is up.

The default start is stationary: every clock starts at an age drawn from its equilibrium
(residual-life) distribution, and each component starts down with its long-run probability, in the
middle of a repair; so the first year is like any other, and designs whose lifetimes are regular do
not fail in lockstep. Exact for independent components; with shared crews, correlated events and
maintenance the start is close to stationary (the queue for a crew starts empty). `start = "new"`
is the first year after a rollout: everything new and up at t = 0. Every node outage is
recorded as a `NodeEvent`; the transient model (sim/transient.py) turns those into what clients
see. Service availability is the share of traffic whose serving region works, where a region works
when it has no outage, its LB is up and at least `cluster.min_nodes_up` nodes are up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.cluster_processes import Region, expon
from sim.distributions import BufferedSampler
from sim.spec import YEAR_S, Spec


@dataclass(slots=True)
class NodeEvent:
    """One node going down: the seam between the long-run and the transient model."""

    time: float
    region: int
    cause: str  # "node.crash", "maintenance", "correlated.zone", ...
    nodes_up_before: int
    nodes_up_after: int


@dataclass
class ReplicationResult:
    """Raw output of one replication; metrics.py aggregates these."""

    horizon_s: float
    downtime_s_per_year: np.ndarray  # service downtime (traffic-share weighted) per simulated year
    downtime_s_by_cause: dict[str, float]
    outages: list[tuple[str, float, float, float]]  # (cause, seconds, traffic share, end time)
    rpo_s: list[float]  # data-age lost per DR fail-over
    dr_failovers: int
    events_by_cause: dict[str, int] = field(default_factory=dict)
    # Filled by the transient model (sim/clientimpact.py, sim/pools.py):
    client_down_s: float | None = None  # client-seconds disconnected per client
    message_delivery: float | None = None  # delivered / published, QoS >= 1
    client_failover_s: dict[str, np.ndarray] = field(default_factory=dict)
    client_extra: dict[str, float] = field(default_factory=dict)
    client_down_s_by_cause: dict[str, float] = field(default_factory=dict)  # per client



class _Share:
    """A share of the traffic, served by one region; moved elsewhere by DR fail-over."""

    __slots__ = ("weight", "serving", "down_since", "cause", "generation", "floating")

    def __init__(self, weight: float, serving: int) -> None:
        self.weight, self.serving = weight, serving
        self.down_since: float | None = None
        self.cause = ""
        self.generation = 0
        self.floating = False


class LongRunModel:
    def __init__(self, spec: Spec, rng: np.random.Generator, horizon_s: float,
                 on_node_event: Callable[[NodeEvent], bool] | None = None) -> None:
        self.spec, self.rng, self.horizon = spec, rng, horizon_s
        self.on_node_event = on_node_event
        self.env = simpy.Environment()
        self.stationary = spec.simulation.start == "stationary"
        self.maintenance_phase = rng.uniform() if self.stationary else 0.0
        self.regions_spec = spec.regions or [None]
        self.events_by_cause: dict[str, int] = {}
        # Service ledger: times where the served share changed, and its new value.
        self.t: list[float] = [0.0]
        self.v: list[float] = [1.0]
        self.outages: list[tuple[str, float, float, float]] = []
        self.rpo: list[float] = []
        self.dr_failovers = 0
        sizes = spec.region_sizes()
        self.regions = [
            Region(self, i, n, (spec.regions[i].outage if spec.regions else None))
            for i, n in enumerate(sizes)
        ]
        dr = spec.dr if len(self.regions) > 1 else None
        self.dr = dr
        if dr is None or dr.mode == "active_active":
            weights = [r.weight for r in spec.regions] or [1.0]
            self.shares = [_Share(w, i) for i, w in enumerate(weights)]
        else:
            self.shares = [_Share(1.0, 0)]
        self.total_weight = sum(s.weight for s in self.shares)
        crash = spec.node.failure.crash
        self.cascade_repair = BufferedSampler(
            crash.repair.frozen() if crash else expon(60.0), rng)  # assumption without a crash mode
        if dr is not None:
            self.failover_time = BufferedSampler(dr.failover.frozen(), rng)
            self.lag = BufferedSampler(dr.replication_lag.frozen(), rng) if dr.replication_lag else None

    # -- bookkeeping ------------------------------------------------------------------------
    def count(self, cause: str, down: bool) -> None:
        if down:
            self.events_by_cause[cause] = self.events_by_cause.get(cause, 0) + 1

    def node_event(self, region: int, cause: str, before: int, after: int) -> None:
        self.count(cause, True)
        if self.on_node_event is not None and self.on_node_event(
                NodeEvent(self.env.now, region, cause, before, after)):
            self.env.process(self._cascade(region))

    def _cascade(self, region: int):
        """A survivor pushed past its overload threshold crashes too (it restarts like a crash)."""
        r = self.regions[region]
        up = [node for node in r.nodes if node.down_reasons == 0]
        if not up:
            return
        node = up[0]
        node.go_down("cascade")
        yield self.env.timeout(self.cascade_repair())
        node.go_up("cascade")

    def update(self, cause: str) -> None:
        now = self.env.now
        regions = self.regions
        if len(regions) == 1:  # fast path: one region, no DR
            value = 1.0 if regions[0].working else 0.0
            if value != self.v[-1]:
                s = self.shares[0]
                if value:
                    self.outages.append((s.cause, now - s.down_since, 1.0, now))
                    s.down_since = None
                else:
                    s.down_since, s.cause = now, cause
                self.t.append(now)
                self.v.append(value)
            return
        served = 0.0
        for s in self.shares:
            if s.floating:
                working = [r.index for r in regions if r.working]
                if working:
                    s.serving, s.floating = working[0], False
            ok = not s.floating and regions[s.serving].working
            if ok:
                if s.down_since is not None:
                    self.outages.append((s.cause, now - s.down_since, s.weight / self.total_weight, now))
                    s.down_since = None
                served += s.weight
            elif s.down_since is None:
                s.down_since, s.cause = now, cause
                s.generation += 1
                if self.dr is not None:
                    self.env.process(self._failover(s, s.generation))
        value = served / self.total_weight
        if value != self.v[-1]:
            self.t.append(now)
            self.v.append(value)

    def _failover(self, share: _Share, generation: int):
        yield self.env.timeout(self.failover_time())
        if share.generation != generation or share.down_since is None:
            return  # the region came back first
        self.dr_failovers += 1
        dr = self.dr
        assert dr is not None
        self.rpo.append(self.lag() if (self.lag is not None and dr.sessions_replicated)
                        else self.spec.clients.session_expiry_s if not dr.sessions_replicated
                        else 0.0)
        others = [r.index for r in self.regions if r.working and r.index != share.serving]
        if others:
            share.serving = others[0]
        else:
            share.floating = True
        self.update("dr")

    # -- run --------------------------------------------------------------------------------
    def run(self) -> ReplicationResult:
        self.env.run(until=self.horizon)
        now = self.horizon
        for s in self.shares:
            if s.down_since is not None:  # censored at the horizon; still counted as downtime
                self.outages.append((s.cause, now - s.down_since, s.weight / self.total_weight, now))
        t = np.append(np.asarray(self.t), now)
        v = np.asarray(self.v)
        down = (1.0 - v) * np.diff(t)
        by_cause: dict[str, float] = {}
        for cause, d, share, _ in self.outages:  # each share's outage belongs to what started it
            by_cause[cause] = by_cause.get(cause, 0.0) + d * share
        # Cumulative downtime at each ledger time, then at each year boundary.
        cum = np.concatenate([[0.0], np.cumsum(down)])
        n_years = int(np.ceil(self.horizon / YEAR_S - 1e-9))
        edges = np.minimum(np.arange(n_years + 1) * YEAR_S, now)
        per_year = np.diff(np.interp(edges, t, cum))
        return ReplicationResult(
            horizon_s=now,
            downtime_s_per_year=per_year,
            downtime_s_by_cause=by_cause,
            outages=self.outages,
            rpo_s=self.rpo,
            dr_failovers=self.dr_failovers,
            events_by_cause=self.events_by_cause,
        )


def longrun_inputs(spec: Spec) -> str:
    """What this module reads of a spec (and whether clients are simulated, since their
    cascades feed back): designs that agree on it have the same long-run history, replication for
    replication, unless a cascade intervenes (sim/history.py). Keep it in step with the code
    (tests/test_history.py checks every `spec.` read here is covered)."""
    import json

    d = spec.model_dump(mode="json")
    keep = {
        "simulation": {k: d["simulation"][k] for k in ("years", "seed", "start")},
        "cluster": {k: d["cluster"][k] for k in ("nodes", "min_nodes_up", "repair_crews")},
        "node": d["node"],
        "lb_failure": (d["lb"] or {}).get("failure"),
        "session_expiry_s": d["clients"]["session_expiry_s"],
        "clients": d["clients"]["count"] > 0,
        "regions": [{k: r[k] for k in ("nodes", "weight", "outage")} for r in d["regions"]],
        "dr": d["dr"],
        "maintenance": d["maintenance"] and {k: v for k, v in d["maintenance"].items()
                                             if k != "evacuate"},
        "correlated": d["correlated"],
    }
    return json.dumps(keep, sort_keys=True)


def run_replication(spec: Spec, seed_seq: np.random.SeedSequence,
                    on_node_event: Callable[[NodeEvent], bool] | None = None) -> ReplicationResult:
    rng = np.random.default_rng(seed_seq)
    horizon = spec.simulation.years * YEAR_S
    return LongRunModel(spec, rng, horizon, on_node_event).run()
