"""Outage samples with right-censored values (clients still out when a lab run, or its replay,
ended): Kaplan-Meier CDFs (scipy.stats.ecdf), their percentiles and the KS distance between two.
A percentile the CDF never reaches within the run is None: it lies beyond what was seen."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

PCTS = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def any_censored(*masks: np.ndarray) -> bool:
    return any(bool(np.any(m)) for m in masks)


def km_cdf(values: np.ndarray, censored: np.ndarray):
    """The Kaplan-Meier estimate of the outage CDF (scipy's ECDFResult.cdf)."""
    data = stats.CensoredData(uncensored=values[~censored], right=values[censored])
    return stats.ecdf(data).cdf


def km_percentiles(values: np.ndarray, censored: np.ndarray) -> dict[str, float | None]:
    cdf = km_cdf(values, censored)
    out: dict[str, float | None] = {}
    for k, q in PCTS.items():
        reached = np.flatnonzero(cdf.probabilities >= q - 1e-12)
        out[k] = float(cdf.quantiles[reached[0]]) if len(reached) else None
    return out


def km_ks(a: np.ndarray, a_cens: np.ndarray, b: np.ndarray, b_cens: np.ndarray) -> float:
    """Largest gap between two Kaplan-Meier CDFs, over the times both runs saw (to the earlier of
    their last observations: past it one CDF is unknown)."""
    fa, fb = km_cdf(a, a_cens), km_cdf(b, b_cens)
    end = min(a.max(), b.max())
    t = np.unique(np.concatenate([a, b]))
    t = t[t <= end]
    return float(np.max(np.abs(fa.evaluate(t) - fb.evaluate(t)))) if len(t) else 0.0


def compare(lab: np.ndarray, lab_cens: np.ndarray, sim: np.ndarray, sim_cens: np.ndarray
            ) -> dict[str, Any]:
    """Lab vs twin where either side has censored outages: the same keys as an uncensored
    comparison, percentiles and KS from Kaplan-Meier, no Wasserstein shift (undefined past the
    run's end); `censored` gives each side's share still out at the end."""
    lp, sp = km_percentiles(lab, lab_cens), km_percentiles(sim, sim_cens)
    return {"lab": lp, "sim": sp,
            "rel_error": {k: (sp[k] - lp[k]) / lp[k] if lp[k] and sp[k] is not None else None
                          for k in lp},
            "ks_distance": km_ks(lab, lab_cens, sim, sim_cens),
            "wasserstein_s": None,
            "censored": {"lab": float(np.mean(lab_cens)), "sim": float(np.mean(sim_cens))},
            "samples": {"lab": int(len(lab)), "sim": int(len(sim))}}


def percentile_met(row: dict[str, Any], k: str, rel: float) -> bool:
    """Within `rel` of the lab; a percentile beyond both runs' ends agrees, beyond one does not."""
    err = row["rel_error"][k]
    if err is not None:
        return abs(err) <= rel
    return row["lab"][k] is None and row["sim"][k] is None
