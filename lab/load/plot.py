"""A load run at a glance: each node's connections and CPU over time, steps and the kill marked."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_load_run(run_dir: Path, summary: dict[str, Any], out: Path) -> Path:
    rows = [json.loads(line) for line in (run_dir / "nodes.jsonl").read_text().splitlines() if line]
    t0 = summary["start_t"]
    cpu: dict[str, list[tuple[float, float]]] = defaultdict(list)
    conns: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if r["ev"] == "node":
            cpu[r["node"]].append((r["t"] - t0, r["cpu_s"]))
        elif r["ev"] == "counters":
            conns[r["node"]].append((r["t"] - t0, r["connections"]))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for node in sorted(cpu):
        t, c = np.array(cpu[node]).T
        rate = np.diff(c) / np.diff(t)
        ax2.plot(t[1:], np.convolve(rate, np.ones(3) / 3, mode="same"), label=node, lw=1.2)
        if conns.get(node):
            tc, n = np.array(conns[node]).T
            ax1.plot(tc, n, label=node, lw=1.2)
    meta = summary["meta"]
    for ax in (ax1, ax2):
        for k in range(1, len(meta["steps"])):
            ax.axvline(k * meta["step_s"], color="0.8", lw=0.8, zorder=0)
        if summary.get("fault_t"):
            ax.axvline(summary["fault_t"] - t0, color="crimson", ls="--", lw=1)
    if summary.get("fault_t"):
        ax1.annotate("node killed", (summary["fault_t"] - t0, ax1.get_ylim()[1] * 0.95),
                     color="crimson", fontsize=9, ha="left", va="top", xytext=(4, 0),
                     textcoords="offset points")
    ax1.set_ylabel("connections per node")
    ax2.set_ylabel("CPU cores per node (cgroup)")
    ax2.set_xlabel("seconds since the first step")
    ax1.legend(loc="upper left", fontsize=8, frameon=False)
    g = summary["generator"]
    lat = g["connack_latency_s"]
    p99 = "-" if lat["p99"] is None else f"{lat['p99'] * 1000:.0f} ms"
    fig.suptitle(f"{meta['scenario']} on {meta['broker']}: {g['connects']} connects, CONNACK p99 "
                 f"{p99}{'' if summary['valid'] else ' (INVALID run)'}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
