"""PNG plots of a study: what people would rather look at than read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from sim.longrun import ReplicationResult  # noqa: E402
from sim.spec import YEAR_S  # noqa: E402

CAUSE_WORDS = {
    "node.crash": "process crash", "node.vm": "VM / host loss", "node.hang": "hang (grey failure)",
    "node.disk": "disk loss", "node.partition": "network partition", "maintenance": "maintenance stop",
    "cascade": "cascade (overload)", "lb": "load balancer", "region": "regional outage", "dr": "DR",
}


def plain(cause: str) -> str:
    """A cause in words (correlated.<name> says which group)."""
    if cause.startswith("correlated."):
        return f"{cause.split('.', 1)[1]} loss (correlated)"
    return CAUSE_WORDS.get(cause, cause)


def file_stem(name: str) -> str:
    """A topology name as a file name: letters, digits, dot, dash and underscore."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "topology"


def _run_words(summary: dict[str, Any]) -> str:
    return (f"{summary['replications']} x {summary['years_per_replication']:g} years, "
            f"seed {summary['seed']}")


def write_plots(summary: dict[str, Any], results: list[ReplicationResult], out_dir: Path
                ) -> list[Path]:
    """PNGs named after the topology, so that a second study does not overwrite the first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = summary["spec"]["meta"]["name"]
    stem = file_stem(name)
    written = [_downtime(summary, results, out_dir / f"{stem}-downtime-per-year.png", name),
               _availability(summary, out_dir / f"{stem}-availability.png", name)]
    if any(r.outages for r in results) or any(r.client_failover_s for r in results):
        written.append(_failover_cdf(summary, results, out_dir / f"{stem}-failover-cdf.png", name))
    return written


def _per_year_by_cause(results: list[ReplicationResult]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Downtime minutes of every simulated year, and the same split by the cause that started
    each outage (an outage counts in the year it ended)."""
    totals = np.concatenate([r.downtime_s_per_year for r in results]) / 60
    causes = sorted({o[0] for r in results for o in r.outages})
    split = {c: np.zeros_like(totals) for c in causes}
    offset = 0
    for r in results:
        years = len(r.downtime_s_per_year)
        for cause, seconds, share, end in r.outages:
            y = min(int(end // YEAR_S), years - 1)
            split[cause][offset + y] += seconds * share / 60
        offset += years
    return totals, split


def _downtime(summary, results, path: Path, name: str) -> Path:
    totals, split = _per_year_by_cause(results)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    quiet = float(np.mean(totals <= 0)) * 100
    some = totals > 0
    top = max(float(totals.max()), 1e-3)
    low = float(totals[some].min()) if some.any() else top
    wide = top / max(low, 1e-9) > 100  # rare long outages beside many short: log bins
    bins = np.geomspace(low, top * 1.001, 50) if wide else np.linspace(0, top, 50)
    if wide:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if some.any() and split:
        # each year's bar stacked by the share of its downtime each cause had
        share = {c: np.divide(v, np.maximum(totals, 1e-300)) for c, v in split.items()}
        order = sorted(split, key=lambda c: -split[c].sum())
        ax.hist([totals[some] for _ in order], bins=bins, weights=[share[c][some] for c in order],
                stacked=True, label=[plain(c) for c in order])
    budget = summary["downtime_minutes_per_year"].get("budget_minutes")
    if budget is not None:
        over = summary["downtime_minutes_per_year"]["p_exceed_budget"] * 100
        ax.axvline(budget, color="red", ls="--",
                   label=f"budget {budget:.2f} min/yr ({over:.1f} % of years over)")
    ax.set_xlabel("service downtime in one year (minutes" + (", log)" if wide else ")"))
    ax.set_ylabel("simulated years (with any downtime)")
    ax.set_title(f"{name}: service downtime per year, by cause\n{_run_words(summary)}; "
                 f"{quiet:.1f} % of years had none", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _availability(summary, path: Path, name: str) -> Path:
    """Each availability as downtime minutes per year (the quantity a budget is written in), on a
    log axis, with its 95 % interval, its value in both units, and the target in minutes."""
    from sim.metrics import MINUTES_PER_YEAR
    from sim.report import nines

    labels = {"service": "service", "client_weighted": "client-weighted\n(per client)",
              "message": "messages\n(share lost)"}
    kinds = ["service", "client_weighted", "message"] if "clients" in summary else ["service"]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 1.1 * len(kinds)))
    floor = 1e-6  # minutes per year: below this the axis would stretch to nothing
    for i, k in enumerate(kinds):
        a = summary["availability"][k]
        mean = max((1 - a["mean"]) * MINUTES_PER_YEAR, floor)
        lo = max((1 - a["ci95"][1]) * MINUTES_PER_YEAR, floor)
        hi = max((1 - a["ci95"][0]) * MINUTES_PER_YEAR, floor)
        ax.errorbar([mean], [i], xerr=[[mean - lo], [hi - mean]], fmt="o", capsize=6, color="C0")
        ax.annotate(f"{mean:.3g} min/yr = {nines(a['mean'])}", (mean, i), xytext=(0, 9),
                    textcoords="offset points", ha="center", fontsize=9)
    target = summary["spec"]["targets"].get("availability")
    if target is not None:
        ax.axvline((1 - target) * MINUTES_PER_YEAR, color="red", ls="--",
                   label=f"target {nines(target)} = {(1 - target) * MINUTES_PER_YEAR:.3g} min/yr")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(range(len(kinds)), [labels[k] for k in kinds])
    ax.set_ylim(-0.6, len(kinds) - 0.3)
    ax.set_xscale("log")
    plain_ticks = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain_ticks)
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("downtime, minutes per year (log; 95 % interval)")
    ax.set_title(f"{name}: availability against the target ({_run_words(summary)})", fontsize=10)
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _failover_cdf(summary, results, path: Path, name: str) -> Path:
    """Client-seen outage per cause; causes whose samples are identical (the same transient pool)
    share one curve and one legend entry."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    modes = sorted({m for r in results for m in r.client_failover_s})
    curves: dict[bytes, tuple[np.ndarray, list[str]]] = {}
    if modes:
        for m in modes:
            x = np.sort(np.concatenate([r.client_failover_s[m] for r in results
                                        if m in r.client_failover_s]))
            if x.size:
                curves.setdefault(x.tobytes(), (x, []))[1].append(plain(m))
        ax.set_xlabel("client outage, disconnect to CONNACK (seconds, log)")
        ax.set_ylabel("share of client reconnects")
    else:
        for c in sorted({o[0] for r in results for o in r.outages}):
            x = np.sort([o[1] for r in results for o in r.outages if o[0] == c])
            curves.setdefault(x.tobytes(), (x, []))[1].append(plain(c))
        ax.set_xlabel("service outage (seconds, log)")
        ax.set_ylabel("share of service outages")
    for i, (x, names) in enumerate(curves.values()):
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", ls=("-", "--", ":", "-.")[i % 4],
                label=" = ".join(names) + f" (p50 {np.median(x):.3g} s)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(f"{name}: how long a failover lasts, per cause ({_run_words(summary)})",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
