"""`twin storm`: one failover in detail - connected clients per node and reconnect rate over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim.pools import POOL_SALT, region_clients, scenario_for  # noqa: E402
from sim.spec import Spec  # noqa: E402
from sim.transient import HORIZON_CAP_S, Scenario, TransientResult, simulate  # noqa: E402


def run_storm(spec: Spec, fail: int, cause: str = "node.crash", region: int = 0,
              return_after_s: float = float("inf")) -> tuple[Scenario, TransientResult]:
    n = spec.region_sizes()[region]
    sc = scenario_for(spec, region, cause, n, return_after_s)
    # scenario_for fails the first node(s); renumber so that node `fail` is the one that fails.
    sc = Scenario(**{**sc.__dict__, "failed": (fail,)})
    rng = np.random.default_rng(np.random.SeedSequence(spec.simulation.seed, spawn_key=(POOL_SALT, 99)))
    return sc, simulate(sc, rng)


def connected_over_time(sc: Scenario, r: TransientResult, t: np.ndarray) -> np.ndarray:
    """Connected clients per node (rows) at times t (columns)."""
    base = r.initial_counts.copy()
    base[list(sc.failed)] = 0  # their clients are counted again as they get back
    out = np.repeat(base[:, None], len(t), axis=1).astype(float)
    for j in range(sc.nodes):
        back = np.sort(r.outage_s[r.final_node == j])
        out[j] += np.searchsorted(back, t, side="right")
    return out


WINDOW_MAX_S = 3600.0  # a plot past an hour shows nothing new: what never ended is stated instead


def plot_storm(sc: Scenario, r: TransientResult, path: Path, title: str) -> Path:
    """Connected clients per node from before the fault, the LB's out/in marks and what the
    clients kept; reconnect attempts per second against the admission limit."""
    out = r.outage_s
    never = int((out >= HORIZON_CAP_S).sum()) if len(out) else 0
    p99 = float(np.percentile(out[out < HORIZON_CAP_S], 99)) if len(out) > never else 0.0
    end = WINDOW_MAX_S if never else min(max(p99 * 1.3 + 5, 30.0), WINDOW_MAX_S)
    if np.isfinite(sc.return_after_s):
        end = min(max(end, sc.return_after_s * 1.2), WINDOW_MAX_S)
    pre = end * 0.08
    minutes = end > 600
    unit, scale = ("minutes", 60.0) if minutes else ("seconds", 1.0)
    t = np.linspace(0, end, 800)
    conn = connected_over_time(sc, r, t)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    for j in range(sc.nodes):
        label = f"node {j}" + (" (failed)" if j in sc.failed else "")
        x = np.concatenate([[-pre, 0], t]) / scale
        y = np.concatenate([[r.initial_counts[j]] * 2, conn[j]])
        ax1.plot(x, y, label=label, lw=2 if j in sc.failed else 1.5)
    marks = [(0.0, "fault", "black")]
    if np.isfinite(r.lb_down_s):
        marks.append((r.lb_down_s, "LB takes it out", "tab:red"))
    if np.isfinite(sc.return_after_s):
        marks.append((sc.return_after_s, "node healthy again", "tab:green"))
    for ax in (ax1, ax2):
        for when, _, color in marks:
            if when <= end:
                ax.axvline(when / scale, color=color, ls=":", lw=1.2)
    for when, text, color in marks:
        if when <= end:
            ax1.annotate(text, (when / scale, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(3, -12), textcoords="offset points", color=color, fontsize=8)
    notes = [f"sessions present after reconnect: {r.session_present.mean() * 100:.0f} %",
             f"QoS 1 messages lost: {r.qos1_lost:,.0f}"]
    if not np.isfinite(r.lb_down_s):
        notes.append(f"the LB never takes the node out ({sc.probe_protocol} probe passes)")
    if never:
        notes.append(f"{never:,} of {len(out):,} clients still out at the end: the model stops "
                     f"an outage at {HORIZON_CAP_S / 3600:.0f} h")
    ax1.text(0.99, 0.04, "\n".join(notes), transform=ax1.transAxes, ha="right", va="bottom",
             fontsize=8, bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})
    ax1.set_ylabel("connected clients")
    ax1.set_ylim(bottom=0)
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax1.set_title(title, fontsize=10)
    width = max(end / 300, 1.0)
    bins = np.arange(0, end + width, width)
    for j in range(sc.nodes):
        times = r.arrivals_t[r.arrivals_node == j]
        counts, _ = np.histogram(times, bins=bins)
        ax2.step(bins[:-1] / scale, counts / width, where="post", label=f"node {j}")
    if sc.max_conn_rate_per_s:
        ax2.axhline(sc.max_conn_rate_per_s, color="red", ls="--", label="admission limit")
    ax2.set_ylabel(f"reconnect attempts / s\n(mean over {width:g} s)")
    ax2.set_xlabel(f"{unit} after the fault")
    ax2.set_xlim(-pre / scale, end / scale)
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def storm_summary(spec: Spec, sc: Scenario, r: TransientResult) -> list[str]:
    out = r.outage_s
    p50, p95, p99 = np.percentile(out, [50, 95, 99]) if len(out) else (0, 0, 0)
    survivors = [j for j in range(sc.nodes) if j not in sc.failed]
    return [
        f"{len(out)} of {region_clients(spec)[0]} clients were on node {sc.failed[0]} ({sc.mode})",
        f"client outage p50 {p50:.1f} s, p95 {p95:.1f} s, p99 {p99:.1f} s, max {out.max():.1f} s",
        f"sessions present after reconnect: {r.session_present.mean() * 100:.1f} %",
        "peak reconnect attempts per survivor: "
        + ", ".join(f"node {j} {r.peak_arrivals_per_s[j]}/s" for j in survivors)
        + f" (limit {sc.max_conn_rate_per_s or 'none'})",
        "connections after: " + ", ".join(f"node {j} {r.counts_after[j]}" for j in range(sc.nodes))
        + ("  -> CASCADE" if r.cascade else ""),
        f"QoS 1 messages lost {r.qos1_lost:.0f}, duplicates {r.duplicates:.0f}",
    ]
