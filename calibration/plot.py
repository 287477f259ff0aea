"""Lab vs twin as a picture: the CDF of client outage per regime, held-out runs pooled;
Kaplan-Meier where outages were still open at a run's end (the curve stops below 1 there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from calibration.censored import km_cdf  # noqa: E402


def _curve(values: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not censored.any():
        xs = np.sort(values)
        return xs, np.arange(1, len(xs) + 1) / len(xs)
    cdf = km_cdf(values, censored)
    return cdf.quantiles, cdf.probabilities


def validation_figure(report: dict[str, Any]):
    regimes = report["modes"]
    fig, axes = plt.subplots(1, len(regimes), figsize=(4.8 * len(regimes), 3.6), squeeze=False)
    lab: dict[str, list[float]] = {}
    lab_cens: dict[str, list[bool]] = {}
    for row in report["runs"]:
        key = row.get("regime", row["mode"])
        opened = row.get("lab_censored_s", [])
        lab.setdefault(key, []).extend(row["lab_outages"] + opened)
        lab_cens.setdefault(key, []).extend([False] * len(row["lab_outages"]) + [True] * len(opened))
    for ax, (key, m) in zip(axes[0], regimes.items(), strict=True):
        sim = np.asarray(m["sim_outages"])
        sim_cens = np.zeros(len(sim), bool)
        sim_cens[m.get("sim_censored_at", [])] = True
        for label, x, c, style in (("lab", np.asarray(lab[key]), np.asarray(lab_cens[key]), "-"),
                                   ("twin", sim, sim_cens, "--")):
            xs, ys = _curve(x, c)
            out = f", {c.mean() * 100:.0f} % still out at the end" if c.any() else ""
            ax.step(xs, ys, style, where="post", label=f"{label} (n={len(x)}{out})")
        ax.set_title(f"{key}: KS {m['ks_distance']:.3f}, {m['runs']} held-out run(s)", fontsize=9)
        ax.set_xlabel("client outage, disconnect to CONNACK (s)")
        ax.set_ylabel("fraction of clients back")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def validation_cdfs(report: dict[str, Any], path: Path) -> Path:
    fig = validation_figure(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
