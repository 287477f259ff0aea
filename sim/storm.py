"""`twin storm`: one failover in detail - connected clients per node and reconnect rate over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim.clientimpact import POOL_SALT, region_clients, scenario_for  # noqa: E402
from sim.spec import Spec  # noqa: E402
from sim.transient import Scenario, TransientResult, simulate  # noqa: E402


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


def plot_storm(sc: Scenario, r: TransientResult, path: Path, title: str) -> Path:
    end = float(r.outage_s.max()) * 1.3 + 5 if len(r.outage_s) else 10.0
    t = np.linspace(0, max(end, 1.0), 600)
    conn = connected_over_time(sc, r, t)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for j in range(sc.nodes):
        label = f"node {j}" + (" (failed)" if j in sc.failed else "")
        ax1.plot(t, conn[j], label=label)
    ax1.set_ylabel("connected clients")
    ax1.legend(fontsize=8)
    ax1.set_title(title)
    bins = np.arange(0, t[-1] + 1, 1.0)
    for j in range(sc.nodes):
        times = r.arrivals_t[r.arrivals_node == j]
        counts, _ = np.histogram(times, bins=bins)
        ax2.step(bins[:-1], counts, where="post", label=f"node {j}")
    if sc.max_conn_rate_per_s:
        ax2.axhline(sc.max_conn_rate_per_s, color="red", ls="--", label="max_conn_rate")
    ax2.set_ylabel("reconnect attempts / s")
    ax2.set_xlabel("seconds after the failure")
    ax2.legend(fontsize=8)
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
