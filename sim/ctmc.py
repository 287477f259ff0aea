"""Exact answers for what has no closed form: one region as a continuous-time Markov chain over
which node is down for what, solved for its steady state (sim/analytic.py uses it).

A state is (FIFO queue of crew repairs, crew-free repairs in progress, the nodes each correlated
event has down, LB down, regional outage). The semantics are the simulator's: a node's failure
clocks pause while it is down for any reason, a correlated event hits k nodes at random (up or
not) and its clock restarts after its repair, maintenance takes a node down whatever its state.
Every time must be exponential (a maintenance stop deterministic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import linalg, sparse
from scipy.sparse.linalg import spsolve

from sim.spec import FailureMode, Spec

MAX_STATES = 50_000


class ChainUnsupported(ValueError):
    """Not an exponential model, or too many states (said in words)."""


def is_exponential(dist) -> bool:
    return getattr(getattr(dist, "dist", None), "name", "") == "expon"


def _rate(fm: FailureMode, where: str) -> tuple[float, float]:
    if not (is_exponential(fm.ttf_dist()) and is_exponential(fm.repair.frozen())):
        raise ChainUnsupported(f"{where}: an exact answer needs exponential times to failure and "
                               "repair here")
    return 1.0 / fm.mttf_s(), 1.0 / fm.mttr_s()


@dataclass
class RegionChain:
    states: list[tuple]
    working: np.ndarray  # the region serves (LB up, no outage, at least min_nodes_up nodes up)
    spec: Spec
    n: int
    outage: FailureMode | None = None  # this region's regional outage

    def generator(self, forced: frozenset[int] = frozenset()) -> sparse.csr_matrix:
        """Q with the nodes in `forced` held down (maintenance)."""
        index = {s: i for i, s in enumerate(self.states)}
        rows, cols, vals = [], [], []
        for i, state in enumerate(self.states):
            for nxt, rate in _moves(self, state, forced):
                j = index[nxt]
                rows.append(i)
                cols.append(j)
                vals.append(rate)
        size = len(self.states)
        q = sparse.csr_matrix((vals, (rows, cols)), shape=(size, size))
        return (q - sparse.diags(np.asarray(q.sum(axis=1)).ravel())).tocsr()

    def working_forced(self, forced: frozenset[int]) -> np.ndarray:
        return np.array([_works(self, s, forced) for s in self.states], dtype=float)


def _down_nodes(state: tuple, forced: frozenset[int]) -> set[int]:
    queue, free, corr, _, _ = state
    down = {node for node, _ in queue} | {node for node, _ in free} | set(forced)
    for hit in corr:
        if hit:
            down |= hit
    return down


def _works(chain: RegionChain, state: tuple, forced: frozenset[int] = frozenset()) -> bool:
    _, _, _, lb_down, outage = state
    up = chain.n - len(_down_nodes(state, forced))
    return not lb_down and not outage and up >= chain.spec.cluster.min_nodes_up


def _moves(chain: RegionChain, state: tuple, forced: frozenset[int]):
    spec, n = chain.spec, chain.n
    queue, free, corr, lb_down, outage = state
    modes = list(spec.node.failure.modes().items())
    rates = [_rate(fm, f"node.failure.{m}") for m, fm in modes]
    crews = spec.cluster.repair_crews
    down = _down_nodes(state, forced)
    for node in range(n):
        if node in down:
            continue
        for m, (_, fm) in enumerate(modes):
            if fm.crew and crews > 0:
                yield (queue + ((node, m),), free, corr, lb_down, outage), rates[m][0]
            else:
                yield (queue, free | {(node, m)}, corr, lb_down, outage), rates[m][0]
    for pos in range(min(crews, len(queue))):
        yield (queue[:pos] + queue[pos + 1:], free, corr, lb_down, outage), rates[queue[pos][1]][1]
    for item in free:
        yield (queue, free - {item}, corr, lb_down, outage), rates[item[1]][1]
    for c, cf in enumerate(spec.correlated):
        if not is_exponential(cf.repair.frozen()):
            raise ChainUnsupported(f"correlated.{cf.name}.repair: an exact answer needs it "
                                   "exponential")
        if corr[c] is None:
            combos = list(combinations(range(n), cf.nodes))
            for hit in combos:
                nxt = corr[:c] + (frozenset(hit),) + corr[c + 1:]
                yield (queue, free, nxt, lb_down, outage), 1.0 / (cf.mtbf_hours * 3600) / len(combos)
        else:
            nxt = corr[:c] + (None,) + corr[c + 1:]
            yield (queue, free, nxt, lb_down, outage), 1.0 / cf.repair.mean_seconds()
    for flag, fm, where in ((3, spec.lb.failure if spec.lb else None, "lb.failure"),
                            (4, chain.outage, "regions.outage")):
        if fm is None:
            continue
        lam, mu = _rate(fm, where)
        nxt = list(state)
        nxt[flag] = not state[flag]
        yield tuple(nxt), (mu if state[flag] else lam)


def region_chain(spec: Spec, region: int = 0) -> RegionChain:
    """Enumerate the region's reachable states (from all up; no node held down)."""
    n = spec.region_sizes()[region]
    chain = RegionChain([], np.zeros(0), spec, n, spec.regions[region].outage if spec.regions else None)
    start = ((), frozenset(), tuple(None for _ in spec.correlated), False, False)
    seen = {start}
    todo = [start]
    while todo:
        state = todo.pop()
        for nxt, _ in _moves(chain, state, frozenset()):
            if nxt not in seen:
                if len(seen) >= MAX_STATES:
                    raise ChainUnsupported(f"more than {MAX_STATES:,} states (nodes x modes x "
                                           "crews): simulate it")
                seen.add(nxt)
                todo.append(nxt)
    chain.states = sorted(seen, key=repr)
    chain.working = np.array([_works(chain, s) for s in chain.states], dtype=float)
    return chain


def stationary(q: sparse.csr_matrix) -> np.ndarray:
    """pi Q = 0, sum pi = 1 (one balance equation replaced by the normalisation)."""
    a = q.T.tolil()
    a[-1, :] = np.ones(q.shape[0])
    b = np.zeros(q.shape[0])
    b[-1] = 1.0
    return np.asarray(spsolve(a.tocsc(), b)).ravel()


def steady_working(chain: RegionChain) -> float:
    return float(stationary(chain.generator()) @ chain.working)


def periodic_working(chain: RegionChain, phases: list[tuple[frozenset[int], float]]) -> float:
    """Time-average share of time working over a repeating schedule of (nodes held down,
    seconds): the periodic steady state of the chain (dense matrix exponentials, Van Loan's
    block form for the time integral)."""
    size = len(chain.states)
    if size > 3000:
        raise ChainUnsupported(f"{size:,} states: too many for a periodic solution here")
    gens = [(chain.generator(f).toarray(), chain.working_forced(f), d) for f, d in phases]
    period = np.eye(size)
    for q, _, d in gens:
        period = period @ linalg.expm(q * d)
    # pi P = pi at the start of the period
    a = (period.T - np.eye(size))
    a[-1, :] = 1.0
    b = np.zeros(size)
    b[-1] = 1.0
    pi = linalg.solve(a, b)
    total = 0.0
    for q, w, d in gens:
        block = np.zeros((size + 1, size + 1))
        block[:size, :size] = q
        block[:size, size] = w
        e = linalg.expm(block * d)
        total += float(pi @ e[:size, size])  # integral of pi e^{Qt} w over the phase
        pi = pi @ e[:size, :size]
    return total / sum(d for _, _, d in gens)


def maintenance_phases(spec: Spec, n: int) -> list[tuple[frozenset[int], float]]:
    mt = spec.maintenance
    assert mt is not None
    interval = mt.interval_days * 86400
    if mt.kind != "rolling":
        return [(frozenset(), interval)]  # a hot patch takes no node down
    d = mt.per_node.frozen()
    if not (hasattr(d, "xk") and len(d.xk) == 1):
        raise ChainUnsupported("maintenance.per_node: an exact answer needs a deterministic stop")
    stop = float(d.xk[0])
    idle = interval - n * stop
    if idle < 0:
        raise ChainUnsupported("maintenance: the rolling stops are longer than the interval")
    return [(frozenset({j}), stop) for j in range(n)] + [(frozenset(), idle)]


def dr_service(spec: Spec, chains: list[RegionChain]) -> float:
    """Two or more regions with exponential DR fail-over: the product chain of the regions and of
    where each traffic share is served (moved after fail-over, no fail-back; a share with no
    working region to go to waits for the first that works)."""
    dr = spec.dr
    assert dr is not None
    if not is_exponential(dr.failover.frozen()):
        raise ChainUnsupported("dr.failover: an exact answer needs an exponential fail-over time")
    phi = 1.0 / dr.failover.mean_seconds()
    regions = len(chains)
    if dr.mode == "active_active":
        weights = [r.weight for r in spec.regions]
        shares = list(range(regions))
    else:
        weights, shares = [1.0], [0]
    qs = [c.generator() for c in chains]
    sizes = [len(c.states) for c in chains]
    # Share status: serving region r (0..R-1) or floating (R).
    share_states = list(np.ndindex(*([regions + 1] * len(shares))))
    total = math.prod(sizes) * len(share_states)
    if total > MAX_STATES:
        raise ChainUnsupported(f"{total:,} states across regions: simulate it")
    region_states = list(np.ndindex(*sizes))
    index = {(rs, ss): i for i, (rs, ss) in
             enumerate((rs, ss) for rs in region_states for ss in share_states)}
    rows, cols, vals = [], [], []
    working = [c.working for c in chains]
    dense = [q.tocsr() for q in qs]

    def settle(rs: tuple, ss: tuple) -> tuple:
        """A floating share goes to the first working region at once."""
        out = []
        for s in ss:
            if s == regions:
                ok = [r for r in range(regions) if working[r][rs[r]]]
                s = ok[0] if ok else regions
            out.append(s)
        return tuple(out)

    for (rs, ss), i in index.items():
        for r in range(regions):  # a region changes state
            row = dense[r].getrow(rs[r])
            for j, rate in zip(row.indices, row.data, strict=True):
                if j == rs[r] or rate <= 0:
                    continue
                nrs = rs[:r] + (j,) + rs[r + 1:]
                rows.append(i)
                cols.append(index[(nrs, settle(nrs, ss))])
                vals.append(rate)
        for k, s in enumerate(ss):  # a waiting share's fail-over completes
            if s < regions and not working[s][rs[s]]:
                ok = [r for r in range(regions) if working[r][rs[r]] and r != s]
                nss = ss[:k] + ((ok[0] if ok else regions),) + ss[k + 1:]
                rows.append(i)
                cols.append(index[(rs, nss)])
                vals.append(phi)
    q = sparse.csr_matrix((vals, (rows, cols)), shape=(len(index), len(index)))
    q = (q - sparse.diags(np.asarray(q.sum(axis=1)).ravel())).tocsr()
    pi = stationary(q)
    served = np.zeros(len(index))
    for (rs, ss), i in index.items():
        served[i] = sum(w for w, s in zip(weights, ss, strict=True)
                        if s < regions and working[s][rs[s]]) / sum(weights)
    return float(pi @ served)
