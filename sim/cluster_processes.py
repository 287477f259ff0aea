"""The long run's components as SimPy processes: a node (competing failure modes, repairs, shared
crews, clocks that pause while it is down) and a region (its outage, correlated failures that take
several nodes, rolling maintenance). `sim.longrun.LongRunModel` owns them and counts what they do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import simpy

from sim.distributions import BufferedSampler, EquilibriumResidual, freeze
from sim.spec import FailureMode

if TYPE_CHECKING:
    from sim.longrun import LongRunModel


class Node:
    """A node with competing failure modes; external causes (maintenance, correlated) also take it
    down, and its clocks pause while it is down for any reason."""

    def __init__(self, model: LongRunModel, region: Region, index: int) -> None:
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
            self.residual = [residual(fm.ttf_dist(), rng) for fm in fms]
            # Long-run share of time down in mode m, relative to up: MTTR_m / MTTF_m.
            ratios = np.array([fm.mttr_s() / fm.mttf_s() for fm in fms])
            pick = rng.uniform() * (1.0 + ratios.sum()) - 1.0
            if pick > 0:
                i = int(np.searchsorted(np.cumsum(ratios), pick))
                self.start_mode = i
                self.start_repair = residual(fms[i].repair.frozen(), rng)
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


class Region:
    def __init__(self, model: LongRunModel, index: int, n_nodes: int, outage: FailureMode | None):
        self.model, self.index = model, index
        spec = model.spec
        crews = spec.cluster.repair_crews
        self.crews = simpy.Resource(model.env, capacity=crews) if crews > 0 else None
        self.nodes_up = n_nodes
        self.min_up = spec.cluster.min_nodes_up
        self.lb_up = True
        self.in_outage = False
        self.nodes = [Node(model, self, i) for i in range(n_nodes)]
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
                yield env.timeout(residual(fm.repair.frozen(), rng))
                self._set(what, False)
            else:
                yield env.timeout(residual(fm.ttf_dist(), rng))
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
        gap = BufferedSampler(expon(mtbf_s), rng)
        ttr = BufferedSampler(repair.frozen(), rng)
        if self.model.stationary and rng.uniform() < (mttr := repair.mean_seconds()) / (mtbf_s + mttr):
            hit = rng.choice(len(self.nodes), size=k, replace=False)  # in progress at t = 0
            for i in hit:
                self.nodes[i].go_down(cause, initial=True)
            yield env.timeout(residual(repair.frozen(), rng))
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


def residual(dist, rng: np.random.Generator) -> float:
    return float(EquilibriumResidual(dist).rvs(1, rng)[0])


def expon(mean_s: float):
    return freeze("expon", scale=mean_s)
