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

from sim.distributions import BufferedSampler, EquilibriumResidual, freeze
from sim.spec import YEAR_S, FailureMode, Spec


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


class _Node:
    """A node with competing failure modes; external causes (maintenance, correlated) also take it
    down, and its clocks pause while it is down for any reason."""

    def __init__(self, model: LongRunModel, region: _Region, index: int) -> None:
        self.model, self.region, self.index = model, region, index
        self.env = env = model.env
        self._on_fire, self._on_repaired = self._fire, self._repaired  # bound once, not per event
        modes = model.spec.node.failure.modes()
        self.names = [f"node.{m}" for m in modes]
        self.ttf = [BufferedSampler(fm.ttf_dist(), model.rng) for fm in modes.values()]
        self.repair = [BufferedSampler(fm.repair.frozen(), model.rng) for fm in modes.values()]
        self.crew = [fm.crew for fm in modes.values()]
        self.residual = [draw() for draw in self.ttf]
        self.start_mode: int | None = None  # down at t = 0 in this mode (stationary start)
        self.start_repair = 0.0
        if model.stationary and modes:
            rng = model.rng
            fms = list(modes.values())
            self.residual = [_residual(fm.ttf_dist(), rng) for fm in fms]
            # Long-run share of time down in mode m, relative to up: MTTR_m / MTTF_m.
            ratios = np.array([fm.mttr_s() / fm.mttf_s() for fm in fms])
            pick = rng.uniform() * (1.0 + ratios.sum()) - 1.0
            if pick > 0:
                i = int(np.searchsorted(np.cumsum(ratios), pick))
                self.start_mode = i
                self.start_repair = _residual(fms[i].repair.frozen(), rng)
                self.residual[i] = self.ttf[i]()  # its clock restarts after the repair
        self.down_reasons = 0
        # The failure clock is a timeout with a callback (a generator resumed per event was most
        # of a replication's time). A node that goes down while it runs pauses its clocks: the
        # timeout still fires (`stale`), ages them by the up-time only, and arms the rest.
        self.waiting_up = False  # in the up phase, the failure timer pending
        self.stale = False  # the node went down while the timer was pending
        self.needs_arm = False  # no timer pending: arm one when the node is up again
        self.up_since = 0.0
        self.up_acc = 0.0  # up-time banked before the node went down meanwhile
        self.armed_i = 0
        self.repairing = ""  # the own failure mode in repair (one at a time)
        if modes:
            env.process(self._start())

    def _start(self):
        if self.start_mode is not None:
            self.go_down(self.names[self.start_mode], initial=True)
            self.needs_arm = True
            self._repair(self.start_mode, self.start_repair)
        else:
            self._arm()
        return
        yield  # a process: started at t = 0 in creation order, like every other

    def _arm(self) -> None:
        self.needs_arm = False
        residual = self.residual
        i = residual.index(min(residual))  # the first of equal minima
        self.armed_i = i
        env = self.env
        self.up_since, self.up_acc, self.stale = env.now, 0.0, False
        self.waiting_up = True
        env.timeout(residual[i]).callbacks.append(self._on_fire)

    def _fire(self, _event: simpy.Event) -> None:
        self.waiting_up = False
        if self.stale:
            # Down for a while meanwhile (external cause): only up-time ages the clocks.
            elapsed = self.up_acc + (0.0 if self.down_reasons else self.env.now - self.up_since)
            self.residual = [r - elapsed for r in self.residual]
            if self.down_reasons:
                self.needs_arm = True
            else:
                self._arm()
            return
        i = self.armed_i
        dt = self.residual[i]
        self.residual = [r - dt for r in self.residual]
        self.residual[i] = self.ttf[i]()
        self.needs_arm = True
        self.go_down(self.names[i])
        self._repair(i, self.repair[i]())

    def _repair(self, i: int, duration: float) -> None:
        crews = self.region.crews
        if crews is not None and self.crew[i]:
            self.env.process(self._crew_repair(i, duration, crews))
        else:
            self.repairing = self.names[i]
            self.env.timeout(duration).callbacks.append(self._on_repaired)

    def _repaired(self, _event: simpy.Event) -> None:
        self.go_up(self.repairing)

    def _crew_repair(self, i: int, duration: float, crews: simpy.Resource):
        with crews.request() as req:
            yield req
            yield self.env.timeout(duration)
        self.go_up(self.names[i])

    def go_down(self, cause: str, initial: bool = False) -> None:
        """`initial`: already down when the run starts (not an event of the run)."""
        self.down_reasons += 1
        if self.down_reasons == 1:
            if self.waiting_up:
                self.stale = True
                self.up_acc += self.env.now - self.up_since
            self.region.node_down(cause, initial)

    def go_up(self, cause: str) -> None:
        self.down_reasons -= 1
        if self.down_reasons == 0:
            if self.waiting_up:
                self.up_since = self.env.now
            self.region.node_up(cause)
            if self.needs_arm:
                self._arm()


class _Region:
    def __init__(self, model: LongRunModel, index: int, n_nodes: int, outage: FailureMode | None):
        self.model, self.index = model, index
        spec = model.spec
        crews = spec.cluster.repair_crews
        self.crews = simpy.Resource(model.env, capacity=crews) if crews > 0 else None
        self.nodes_up = n_nodes
        self.min_up = spec.cluster.min_nodes_up
        self.lb_up = True
        self.in_outage = False
        self.nodes = [_Node(model, self, i) for i in range(n_nodes)]
        if spec.lb is not None and spec.lb.failure is not None:
            model.env.process(self._alternate(spec.lb.failure, "lb"))
        if outage is not None:
            model.env.process(self._alternate(outage, "region"))
        for cf in spec.correlated:
            model.env.process(self._correlated(cf.name, cf.mtbf_hours * 3600, cf.nodes, cf.repair))
        if spec.maintenance is not None:
            model.env.process(self._maintenance())

    @property
    def working(self) -> bool:
        return self.lb_up and not self.in_outage and self.nodes_up >= self.min_up

    def node_down(self, cause: str, initial: bool = False) -> None:
        self.nodes_up -= 1
        if not initial:
            self.model.node_event(self.index, cause, self.nodes_up + 1, self.nodes_up)
        if self.nodes_up == self.min_up - 1:  # only this crossing changes the region's state
            self.model.update(cause)

    def node_up(self, cause: str) -> None:
        self.nodes_up += 1
        if self.nodes_up == self.min_up:
            self.model.update(cause)

    def _set(self, what: str, down: bool, initial: bool = False) -> None:
        if what == "lb":
            self.lb_up = not down
        else:
            self.in_outage = down
        if not initial:
            self.model.count(what, down)
        self.model.update(what)

    def _alternate(self, fm: FailureMode, what: str):
        env, rng = self.model.env, self.model.rng
        ttf, ttr = BufferedSampler(fm.ttf_dist(), rng), BufferedSampler(fm.repair.frozen(), rng)
        if self.model.stationary:
            mttf, mttr = fm.mttf_s(), fm.mttr_s()
            if rng.uniform() < mttr / (mttf + mttr):
                self._set(what, True, initial=True)
                yield env.timeout(_residual(fm.repair.frozen(), rng))
                self._set(what, False)
            else:
                yield env.timeout(_residual(fm.ttf_dist(), rng))
                self._set(what, True)
                yield env.timeout(ttr())
                self._set(what, False)
        while True:
            yield env.timeout(ttf())
            self._set(what, True)
            yield env.timeout(ttr())
            self._set(what, False)

    def _correlated(self, name: str, mtbf_s: float, k: int, repair):
        env, rng = self.model.env, self.model.rng
        cause = f"correlated.{name}"
        gap = BufferedSampler(_expon(mtbf_s), rng)
        ttr = BufferedSampler(repair.frozen(), rng)
        if self.model.stationary and rng.uniform() < (mttr := repair.mean_seconds()) / (mtbf_s + mttr):
            hit = rng.choice(len(self.nodes), size=k, replace=False)  # in progress at t = 0
            for i in hit:
                self.nodes[i].go_down(cause, initial=True)
            yield env.timeout(_residual(repair.frozen(), rng))
            for i in hit:
                self.nodes[i].go_up(cause)
        while True:
            yield env.timeout(gap())
            hit = rng.choice(len(self.nodes), size=k, replace=False)
            for i in hit:
                self.nodes[i].go_down(cause)
            yield env.timeout(ttr())
            for i in hit:
                self.nodes[i].go_up(cause)

    def _maintenance(self):
        env, rng = self.model.env, self.model.rng
        mt = self.model.spec.maintenance
        assert mt is not None
        per_node = BufferedSampler(mt.per_node.frozen(), rng)
        interval = mt.interval_days * 86400
        # Regions are patched at different times of the cycle, never all at once.
        offset = interval * (self.index + 1) / (len(self.model.regions_spec) + 1)
        if self.model.stationary:  # the whole schedule at a random phase; a cycle may be running
            offset = (offset + self.model.maintenance_phase * interval) % interval
            start = offset - interval
            for node in self.nodes if mt.kind == "rolling" else ():
                end = start + per_node()
                if end > 0:
                    yield env.timeout(max(0.0, start - env.now))
                    node.go_down("maintenance", initial=env.now == 0)
                    yield env.timeout(end - env.now)
                    node.go_up("maintenance")
                start = end
        yield env.timeout(max(0.0, offset - env.now))
        while True:
            start = env.now
            if mt.kind == "rolling":
                for node in self.nodes:
                    node.go_down("maintenance")
                    yield env.timeout(per_node())
                    node.go_up("maintenance")
            yield env.timeout(max(0.0, interval - (env.now - start)))


def _residual(dist, rng: np.random.Generator) -> float:
    return float(EquilibriumResidual(dist).rvs(1, rng)[0])


def _expon(mean_s: float):
    return freeze("expon", scale=mean_s)


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
            _Region(self, i, n, (spec.regions[i].outage if spec.regions else None))
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
            crash.repair.frozen() if crash else _expon(60.0), rng)  # assumption without a crash mode
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
