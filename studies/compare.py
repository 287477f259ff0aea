"""Compare designs with common random numbers: replication i of every design uses the same seed
stream, so where designs share components they share failure histories, and the difference to
the baseline is taken per replication (a paired t interval). Two identical designs differ by
exactly 0."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sim.metrics import MINUTES_PER_YEAR, mean_ci
from sim.spec import Spec
from studies.evaluate import DesignResult, evaluate_all

# (per-replication key, label, unit, factor): availabilities as downtime minutes per year.
PAIRED = [
    ("service_availability", "service downtime", "min/yr", -MINUTES_PER_YEAR),
    ("client_weighted_availability", "client-weighted downtime", "min/yr", -MINUTES_PER_YEAR),
    ("message_availability", "messages lost", "per million", -1e6),
    ("share_of_years_over_budget", "years over budget", "%", 100.0),
    ("sessions_lost_per_year", "sessions lost", "per year", 1.0),
    ("qos1_lost_per_year", "QoS 1 messages lost", "per year", 1.0),
]


def _transform(x: np.ndarray, factor: float) -> np.ndarray:
    return (1.0 - x) * -factor if factor < 0 else x * factor


def _aligned(specs: list[Spec], baseline: int) -> list[Spec]:
    """Every design runs the baseline's years, replications and seed (pairing needs it)."""
    sim = specs[baseline].simulation
    return [s.model_copy(update={"simulation": sim}) for s in specs]


def compare(specs: list[Spec], baseline: int = 0, workers: int | None = None,
            use_cache: bool = True, on_done: Callable[[DesignResult], None] | None = None
            ) -> pd.DataFrame:
    """One row per design and metric: value with its 95 % CI, and the paired difference to the
    baseline with its 95 % CI (`zero_in_ci`: the data cannot tell the designs apart)."""
    specs = _aligned(specs, baseline)
    results = evaluate_all(specs, workers=workers, use_cache=use_cache, on_done=on_done)
    return table(results, baseline)


def table(results: list[DesignResult], baseline: int = 0) -> pd.DataFrame:
    base = results[baseline]
    rows = []
    for r in results:
        for key, label, unit, factor in PAIRED:
            x = _transform(r.per_replication[key], factor)
            b = _transform(base.per_replication[key], factor)
            if np.all(np.isnan(x)):
                continue
            value, (lo, hi) = _value_ci(r, key, x, factor)
            d = x - b
            dm, (dlo, dhi) = mean_ci(d)
            rows.append(dict(design=r.name, metric=label, unit=unit, value=value, lo=lo, hi=hi,
                             diff=dm, diff_lo=dlo, diff_hi=dhi, zero_in_ci=bool(dlo <= 0 <= dhi),
                             baseline=base.name))
        for label, unit, value in _unpaired(r):
            bvalue = dict((lbl, v) for lbl, _, v in _unpaired(base)).get(label)
            diff = None if value is None or bvalue is None else value - bvalue
            rows.append(dict(design=r.name, metric=label, unit=unit, value=value, lo=np.nan,
                             hi=np.nan, diff=diff, diff_lo=np.nan, diff_hi=np.nan,
                             zero_in_ci=None, baseline=base.name))
    return pd.DataFrame(rows)


def _value_ci(r: DesignResult, key: str, x: np.ndarray, factor: float
              ) -> tuple[float, tuple[float, float]]:
    """Availabilities take the summary's honest interval (exposure bound when few outages)."""
    kind = {"service_availability": "service", "client_weighted_availability": "client_weighted",
            "message_availability": "message"}.get(key)
    if kind is None:
        return mean_ci(x)
    a = r.summary["availability"][kind]
    t = lambda v: _transform(np.asarray([v]), factor)[0]  # noqa: E731
    lo, hi = sorted((t(a["ci95"][0]), t(a["ci95"][1])))
    return float(t(a["mean"])), (float(lo), float(hi))


def _unpaired(r: DesignResult) -> list[tuple[str, str, float | None]]:
    """Figures pooled over all events (no per-replication pairing)."""
    s = r.summary
    out = []
    for key, label in (("rto_seconds", "RTO p99"), ("rpo_seconds", "RPO p99")):
        p99 = s[key]["p99"]
        out.append((label, "min", None if p99 is None else p99 / 60))
    for name, cap in s.get("capacity", {}).items():
        out.append((f"{name.replace('_minus_', '-').upper()} connections per survivor",
                    "connections", cap["connections_per_node_max"]))
    return out


def forest_plot(df: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Each design's paired difference to the baseline with its 95 % CI, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = df[df["zero_in_ci"].notna()]
    metrics = list(dict.fromkeys(paired["metric"]))
    designs = list(dict.fromkeys(paired["design"]))
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 1.0 + 0.45 * len(designs) * len(metrics)),
                             squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        sub = paired[paired["metric"] == metric].set_index("design").loc[designs]
        y = np.arange(len(designs))[::-1]
        err = np.array([sub["diff"] - sub["diff_lo"], sub["diff_hi"] - sub["diff"]])
        colors = ["0.5" if z else ("tab:green" if d < 0 else "tab:red")
                  for z, d in zip(sub["zero_in_ci"], sub["diff"], strict=True)]
        for yi, d, e0, e1, c in zip(y, sub["diff"], err[0], err[1], colors, strict=True):
            ax.errorbar([d], [yi], xerr=[[e0], [e1]], fmt="o", color=c, capsize=4)
            ax.annotate(f"{d:+.3g}", (d, yi), xytext=(0, 6), textcoords="offset points",
                        ha="center", fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, designs, fontsize=8)
        unit = sub["unit"].iloc[0]
        ax.set_title(f"{metric} ({unit}): difference to {sub['baseline'].iloc[0]}", fontsize=9)
        ax.set_ylim(-0.7, len(designs) - 0.3)
    fig.suptitle(title or "paired differences, 95 % CI (grey: CI contains 0; green: better; "
                 "red: worse)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the suptitle
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
