"""Long-run histories shared by designs that differ only in what clients see.

Designs that agree on `longrun_inputs` (probe, LB algorithm, sessions, clients ... differ) go
through the same failures, repairs and maintenance, replication for replication: the long run
draws from its own generator, and clients feed back only through cascades. So the first such
design of a study records each replication's long-run result and its node events (in order);
the others replay them through their own client accounting, with the same draws a full run
makes. A history is used only if no draw of the replaying design could cascade, and recorded
only from a run without cascades. Enabled where a study names a folder (`TWIN_LONGRUN_CACHE`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

from sim import source_fingerprint, write_atomic
from sim.longrun import ReplicationResult, longrun_inputs
from sim.spec import Spec

ENV = "TWIN_LONGRUN_CACHE"
Key = tuple[str, int, int]  # (cause, region, nodes up before) of a node event


def path_for(spec: Spec, index: int) -> Path | None:
    folder = os.environ.get(ENV)
    if not folder:
        return None
    h = hashlib.sha256(f"{longrun_inputs(spec)}|{index}|{source_fingerprint()}".encode())
    return Path(folder) / f"{h.hexdigest()[:32]}.pkl"


def load(path: Path) -> tuple[ReplicationResult, list[Key]] | None:
    try:
        result, distinct, codes = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, ValueError):
        return None  # absent, or torn: run it
    return result, [distinct[c] for c in codes.tolist()]


def save(path: Path, result: ReplicationResult, keys: list[Key]) -> None:
    """Before the client figures are attached to `result`."""
    distinct = list(dict.fromkeys(keys))
    code = {k: i for i, k in enumerate(distinct)}
    codes = np.array([code[k] for k in keys], dtype=np.int32)
    write_atomic(path, pickle.dumps((result, distinct, codes)))
