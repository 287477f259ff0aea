from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from sim.spec import Spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "models" / "renata-reference.toml"


def make_spec(**tables: Any) -> Spec:
    """A small valid spec; keyword tables replace or extend the defaults."""
    data: dict[str, Any] = {
        "meta": {"name": "test"},
        "simulation": {"years": 5, "replications": 10, "seed": 7},
        "cluster": {"nodes": 3, "min_nodes_up": 2},
        "node": {"failure": {"crash": {"mtbf_hours": 100,
                                       "repair": {"dist": "exponential", "mean_s": 36000}}}},
    }
    data.update(copy.deepcopy(tables))
    return parse_spec(data)


@pytest.fixture
def root() -> Path:
    return ROOT
