"""A failover calibration file as the model reads it (`calibration/` writes them; schema:
docs/calibration.md): its distributions and the session-store values a transient draws.
The file is checked at load by `sim.spec.check_calibration_file`."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

FAMILIES = {"lognormal": stats.lognorm, "gamma": stats.gamma, "weibull": stats.weibull_min,
            "exponential": stats.expon}
QUANTILES = np.linspace(0.0, 1.0, 101)  # an empirical fit stores these quantiles of its data


def frozen(fit: dict[str, Any]):
    return FAMILIES[fit["family"]](*fit["params"])


def draw(fit: dict[str, Any] | None, size: int, rng: np.random.Generator) -> np.ndarray:
    """Samples from a fit: parametric families by scipy, empirical ones by inverse CDF."""
    if fit is None or size == 0:
        return np.zeros(size)
    if fit.get("sampler", fit["family"]) == "empirical":
        return np.interp(rng.uniform(size=size), QUANTILES, fit["quantiles"])
    return frozen(fit).rvs(size=size, random_state=rng)


def refuse_p(store: dict[str, Any], rng: np.random.Generator) -> float:
    """One replication's refusal share: a calibration run's own, drawn (a run-level effect)."""
    shares = store.get("refuse_p_per_run")
    return float(rng.choice(shares)) if shares else float(store.get("refuse_p", 0.0))


def refuse_again_p(store: dict[str, Any]) -> float | None:
    """After a refusal, the next CONNECT's chance to be refused too (None: as after a held one)."""
    return store.get("refuse_again_p")


def store_wait_s(store: dict[str, Any]) -> float:
    """How long a survivor holds a CONNECT while the store is down (None: past any client)."""
    return float("inf") if store.get("wait_s", 0.0) is None else float(store.get("wait_s", 0.0))
