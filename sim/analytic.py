"""Exact steady-state availability of the node-level model: the simulator's independent check.

* Independent repair: a node is an alternating renewal process whose mode clocks pause while it
  is down, so its availability is 1 / (1 + sum_m MTTR_m / MTTF_m) for any distributions; the
  cluster works with at least k of n nodes up (binomial, FACTS.md "Known answers").
* Shared repair crews (FIFO): a continuous-time Markov chain over the repair queue; needs
  exponential times. With one mode and one crew it is the birth-death chain of FACTS.md.
* LB and region outages are in series with the cluster (independent components).
* Correlated failures, rolling maintenance (a deterministic stop per node: a periodic chain) and
  two or more regions with exponential DR fail-over: the Markov chain of sim/ctmc.py. Anything
  else is refused naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, stats

from sim.spec import FailureMode, Spec


class AnalyticUnsupported(ValueError):
    """The spec has a feature with no closed form here (said in words)."""


@dataclass(frozen=True)
class AnalyticResult:
    node: float | None  # one node (independent repair only)
    cluster: float  # at least min_nodes_up of n up
    lb: float
    region: float
    service: float
    method: str


def alternating(fm: FailureMode) -> float:
    return fm.mttf_s() / (fm.mttf_s() + fm.mttr_s())


def node_availability(modes: dict[str, FailureMode]) -> float:
    return 1.0 / (1.0 + sum(fm.mttr_s() / fm.mttf_s() for fm in modes.values()))


def k_out_of_n(a: float, n: int, k: int) -> float:
    return float(stats.binom.sf(k - 1, n, a))


def _is_exponential(fm: FailureMode) -> bool:
    return fm.ttf_dist().dist.name == "expon" and fm.repair.frozen().dist.name == "expon"


def shared_crews(modes: dict[str, FailureMode], n: int, k: int, crews: int) -> float:
    """P(at least k of n up) with `crews` FIFO repair crews, solved as a CTMC."""
    fms = list(modes.values())
    if not all(_is_exponential(fm) for fm in fms):
        raise AnalyticUnsupported("shared repair crews have a closed form only for exponential times")
    lam = [1.0 / fm.mttf_s() for fm in fms]
    mu = [1.0 / fm.mttr_s() for fm in fms]
    crew_modes = [i for i, fm in enumerate(fms) if fm.crew]
    free_modes = [i for i, fm in enumerate(fms) if not fm.crew]
    # State: (FIFO queue of crew-mode failures, counts of crew-free failures per mode).
    start = ((), tuple(0 for _ in free_modes))
    index = {start: 0}
    todo = [start]
    edges: list[tuple[int, int, float]] = []
    while todo:
        state = todo.pop()
        queue, counts = state
        up = n - len(queue) - sum(counts)
        nexts: list[tuple[tuple, float]] = []
        for m in crew_modes:
            if up:
                nexts.append(((queue + (m,), counts), up * lam[m]))
        for j, m in enumerate(free_modes):
            if up:
                c = list(counts)
                c[j] += 1
                nexts.append(((queue, tuple(c)), up * lam[m]))
            if counts[j]:
                c = list(counts)
                c[j] -= 1
                nexts.append(((queue, tuple(c)), counts[j] * mu[m]))
        for pos in range(min(crews, len(queue))):
            nexts.append(((queue[:pos] + queue[pos + 1 :], counts), mu[queue[pos]]))
        for nxt, rate in nexts:
            if nxt not in index:
                index[nxt] = len(index)
                todo.append(nxt)
            edges.append((index[state], index[nxt], rate))
    size = len(index)
    q = np.zeros((size, size))
    for i, j, rate in edges:
        q[i, j] += rate
    q[np.diag_indices(size)] = -q.sum(axis=1)
    # pi Q = 0 with sum(pi) = 1: replace one balance equation by the normalisation.
    a = q.T.copy()
    a[-1, :] = 1.0
    b = np.zeros(size)
    b[-1] = 1.0
    pi = linalg.solve(a, b)
    up = np.array([n - len(s[0]) - sum(s[1]) for s in index])
    return float(pi[up >= k].sum())


def solve(spec: Spec) -> AnalyticResult:
    if len(spec.region_sizes()) > 1 or spec.correlated or spec.maintenance is not None:
        return _solve_chain(spec)
    modes = spec.node.failure.modes()
    n, k, crews = spec.region_sizes()[0], spec.cluster.min_nodes_up, spec.cluster.repair_crews
    lb = alternating(spec.lb.failure) if spec.lb is not None and spec.lb.failure else 1.0
    outage = spec.regions[0].outage if spec.regions else None
    region = alternating(outage) if outage is not None else 1.0
    if not modes:
        cluster, node, method = 1.0, 1.0, "no node failure modes"
    elif crews == 0 or crews >= n or not any(fm.crew for fm in modes.values()):
        node = node_availability(modes)
        cluster, method = k_out_of_n(node, n, k), "k-out-of-n, independent repair"
    else:
        node = None
        cluster = shared_crews(modes, n, k, crews)
        method = f"CTMC, {crews} shared FIFO repair crew(s)"
    return AnalyticResult(node, cluster, lb, region, cluster * lb * region, method)


def _solve_chain(spec: Spec) -> AnalyticResult:
    """Correlated failures, maintenance and DR: the Markov chain of sim/ctmc.py."""
    from sim.ctmc import (
        ChainUnsupported,
        dr_service,
        maintenance_phases,
        periodic_working,
        region_chain,
        steady_working,
    )

    regions = len(spec.region_sizes())
    if regions > 1 and spec.maintenance is not None:
        raise AnalyticUnsupported("maintenance in more than one region (each at its own phase): "
                                  "simulate it")
    try:
        chains = [region_chain(spec, r) for r in range(regions)]
        if spec.maintenance is not None:
            service = periodic_working(chains[0], maintenance_phases(spec, chains[0].n))
            method = "periodic CTMC (maintenance)"
        elif regions > 1:
            service = dr_service(spec, chains)
            method = f"CTMC of {regions} regions and DR fail-over ({spec.dr.mode})"  # type: ignore[union-attr]
        else:
            service = steady_working(chains[0])
            method = "CTMC (correlated failures)"
    except ChainUnsupported as err:
        raise AnalyticUnsupported(str(err)) from None
    lb = alternating(spec.lb.failure) if spec.lb is not None and spec.lb.failure else 1.0
    outage = spec.regions[0].outage if spec.regions else None
    region = alternating(outage) if outage is not None else 1.0
    # region 0's cluster alone (LB and outage are independent and in series with it)
    cluster = steady_working(chains[0]) / (lb * region) if spec.maintenance is None else \
        service / (lb * region)
    return AnalyticResult(None, cluster, lb, region, service, method)
