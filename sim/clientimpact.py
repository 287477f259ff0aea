"""Client impact of node events (filled in by the transient model)."""

from __future__ import annotations

import numpy as np

from sim.longrun import ReplicationResult
from sim.spec import Spec


def attach_client_impact(spec: Spec, result: ReplicationResult, seq: np.random.SeedSequence) -> None:
    return None
