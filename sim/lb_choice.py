"""The LB's choice of node for each reconnect attempt of a transient: least connections (counting
pending connections), source-IP hash, a fresh hash per flow (5-tuple, round robin), and client-IP
persistence that sticks to a node until it leaves rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.transient import Scenario


def initial_sticky(sc: Scenario) -> np.ndarray | None:
    if sc.persistence != "client_ip":
        return None
    up = np.array([i for i in range(sc.nodes) if i not in sc.down_before])
    return up[np.arange(sc.sites) % len(up)].astype(np.int64)


def choose(sc: Scenario, rot: np.ndarray, in_rotation: np.ndarray, idx: np.ndarray,
            site: np.ndarray, load: np.ndarray, sticky: np.ndarray | None, hashes: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """The LB's choice of node for each attempt (in arrival order); `rot` the nodes in rotation,
    `in_rotation` the same as a mask over all nodes."""
    if sticky is not None:
        s = site[idx]
        chosen = sticky[s]  # fancy indexing: a copy
        stale = ~in_rotation[chosen]
        if stale.any():
            # Each stale site picks anew at its first attempt, seeing the load of every earlier
            # attempt of this step; its later attempts follow it.
            load = load.copy()
            sites, first = np.unique(s[stale], return_index=True)
            positions = np.flatnonzero(stale)[first]
            order = np.argsort(positions)
            chosen[stale] = -1
            done = 0
            for st, pos in zip(sites[order].tolist(), positions[order].tolist(), strict=True):
                seg = chosen[done:pos]
                load += np.bincount(seg[seg >= 0], minlength=len(load))
                done = pos
                pick = pick_one(sc, rot, load, st, hashes, rng)
                sticky[st] = pick
                chosen[stale & (s == st)] = pick
        return chosen
    if sc.algorithm == "source_ip":
        return rot[hashes[site[idx]] % len(rot)]
    if sc.algorithm in ("five_tuple", "round_robin"):
        return rot[rng.integers(len(rot), size=len(idx))]
    return least_connections(rot, load, len(idx))


def pick_one(sc, rot, load, st, hashes, rng) -> int:
    if sc.algorithm == "source_ip":
        return int(rot[hashes[st] % len(rot)])
    if sc.algorithm in ("five_tuple", "round_robin"):
        return int(rot[rng.integers(len(rot))])
    return int(rot[np.argmin(load[rot])])


def least_connections(rot: np.ndarray, load: np.ndarray, m: int) -> np.ndarray:
    """Sequential least-connections for m arrivals: arrival k takes the k-th lowest free slot,
    slots ordered by (level, node index) - the same as m argmin steps with ties to the lowest."""
    c = load[rot].astype(np.int64)
    # Water level: the lowest L with at least m free slots below it.
    lo, hi = int(c.min()), int(c.min()) + m
    while lo < hi:
        mid = (lo + hi) // 2
        if np.maximum(mid - c, 0).sum() >= m:
            hi = mid
        else:
            lo = mid + 1
    per = np.maximum(lo - c, 0)
    node = np.repeat(np.arange(len(rot)), per)
    level = np.concatenate([np.arange(ci, ci + p) for ci, p in zip(c, per, strict=True)]) \
        if per.sum() else np.empty(0, np.int64)
    order = np.lexsort((node, level))[:m]
    return rot[node[order]]
