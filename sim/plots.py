"""PNG plots of a study: what people would rather look at than read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim.longrun import ReplicationResult  # noqa: E402


def write_plots(summary: dict[str, Any], results: list[ReplicationResult], out_dir: Path
                ) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = summary["spec"]["meta"]["name"]
    written = [_downtime(summary, results, out_dir / "downtime_per_year.png", name),
               _availability(summary, out_dir / "availability.png", name)]
    if any(r.outages for r in results) or any(r.client_failover_s for r in results):
        written.append(_failover_cdf(results, out_dir / "failover_cdf.png", name))
    return written


def _downtime(summary, results, path: Path, name: str) -> Path:
    per_year = np.concatenate([r.downtime_s_per_year for r in results]) / 60
    fig, ax = plt.subplots(figsize=(7, 4))
    top = max(float(per_year.max()), 1e-3)
    ax.hist(per_year, bins=np.linspace(0, top, 60), color="#4878a8")
    budget = summary["downtime_minutes_per_year"].get("budget_minutes")
    if budget is not None:
        share = summary["downtime_minutes_per_year"]["p_exceed_budget"] * 100
        ax.axvline(budget, color="red", ls="--", label=f"budget {budget:.2f} min ({share:.1f} % of years over)")
        ax.legend()
    ax.set_xlabel("service downtime in a year (minutes)")
    ax.set_ylabel("simulated years")
    ax.set_title(f"{name}: downtime per year")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _availability(summary, path: Path, name: str) -> Path:
    kinds = ["service", "client_weighted", "message"]
    # Unavailability on a log scale: the interesting part of 0.99999 is the part after the nines.
    means = [1 - summary["availability"][k]["mean"] for k in kinds]
    lo = [1 - summary["availability"][k]["ci95"][1] for k in kinds]
    hi = [1 - summary["availability"][k]["ci95"][0] for k in kinds]
    fig, ax = plt.subplots(figsize=(7, 4))
    y = np.maximum(means, 1e-12)
    err = np.array([np.maximum(y - np.maximum(lo, 1e-12), 0), np.maximum(np.array(hi) - y, 0)])
    ax.errorbar(kinds, y, yerr=err, fmt="o", capsize=6, label="mean, 95 % CI")
    target = summary["spec"]["targets"].get("availability")
    if target is not None:
        ax.axhline(1 - target, color="red", ls="--", label=f"target {target}")
    ax.set_yscale("log")
    ax.set_ylabel("unavailability (1 - A)")
    ax.set_title(f"{name}: availability against target")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _failover_cdf(results, path: Path, name: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    modes = sorted({m for r in results for m in r.client_failover_s})
    if modes:
        for m in modes:
            x = np.sort(np.concatenate([r.client_failover_s[m] for r in results
                                        if m in r.client_failover_s]))
            if x.size:
                ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=m)
        ax.set_xlabel("client outage (s): disconnect to CONNACK")
    else:
        causes = sorted({o[0] for r in results for o in r.outages})
        for c in causes:
            x = np.sort([o[1] for r in results for o in r.outages if o[0] == c])
            ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=c)
        ax.set_xlabel("service outage (s)")
    ax.set_xscale("log")
    ax.set_ylabel("fraction of events")
    ax.set_title(f"{name}: failover duration CDF per failure mode")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def validation_figure(report: dict[str, Any]):
    """Lab vs twin: the empirical CDF of client outage per failure mode (held-out runs pooled)."""
    modes = report["modes"]
    fig, axes = plt.subplots(1, len(modes), figsize=(4.8 * len(modes), 3.6), squeeze=False)
    lab_by_mode: dict[str, list[float]] = {}
    for row in report["runs"]:
        lab_by_mode.setdefault(row["mode"], []).extend(row["lab_outages"])
    for ax, (mode, m) in zip(axes[0], modes.items(), strict=True):
        for label, x, style in (("lab", lab_by_mode[mode], "-"), ("twin", m["sim_outages"], "--")):
            xs = np.sort(np.asarray(x))
            ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), style, where="post",
                    label=f"{label} (n={len(xs)})")
        ax.set_title(f"{mode}: KS {m['ks_distance']:.3f}, {m['runs']} held-out run(s)")
        ax.set_xlabel("client outage, disconnect to CONNACK (s)")
        ax.set_ylabel("fraction of clients")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def validation_cdfs(report: dict[str, Any], path: Path) -> Path:
    fig = validation_figure(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
