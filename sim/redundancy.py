"""Redundant parts inside a node (RAID disks, network paths): how often all of them are lost.

A node with `units` parts that survives `tolerates` of them down at once fails in that mode when
one more is lost before the others are back. Units fail independently (exponential, per unit) and
are repaired in parallel; the node's time to failure is the mean time to absorption of that
birth-death chain, solved exactly (`mean_time_to_loss`). The long run takes it as the mode's
exponential MTBF: the chain forgets its start long before it is absorbed when repairs are much
shorter than unit lifetimes, which is what redundancy is for (simulated absorptions: CV 0.95-1.05,
tests/test_redundancy.py).
"""

from __future__ import annotations

import numpy as np


def mean_time_to_loss(units: int, tolerates: int, unit_mtbf_h: float, unit_repair_h: float) -> float:
    """Mean hours from all units up until more than `tolerates` are down at once.

    States i = units down (0..tolerates); i -> i+1 at (units - i)/mtbf, i -> i-1 at i/repair.
    Exact for exponential lifetimes and repairs (a repair enters by its mean otherwise).
    """
    if not 0 <= tolerates < units:
        raise ValueError(f"tolerates = {tolerates}: allowed 0 .. units - 1 ({units - 1})")
    lam, mu = 1.0 / unit_mtbf_h, 1.0 / unit_repair_h
    n = tolerates + 1
    q = np.zeros((n, n))
    for i in range(n):
        down = (units - i) * lam  # to i + 1 (absorbing when i == tolerates)
        q[i, i] = -(down + i * mu)
        if i + 1 < n:
            q[i, i + 1] = down
        if i:
            q[i, i - 1] = i * mu
    return float(np.linalg.solve(q, -np.ones(n))[0])
