"""Capacity planning: for each fleet size, the smallest number of nodes per region whose
survivors stay below overload after one and after two node losses, and whose reconnect storm
stays within the admission limit (connections/s per node), from the failover transients of
sim/ (full scale, the topology's own clients and LB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.clientimpact import capacity_figures
from sim.spec import Spec
from studies.variants import apply


def size_table(spec: Spec, devices: list[int], nodes: list[int]) -> pd.DataFrame:
    """One row per (devices, nodes per region): the N-1 / N-2 figures and whether they fit."""
    limit = spec.cluster.overload_connections or spec.cluster.max_connections
    rate = spec.cluster.max_conn_rate_per_s
    rows = []
    for d in devices:
        for n in nodes:
            if n < spec.cluster.min_nodes_up:
                continue
            s = apply(spec, {"clients.count": int(d), "cluster.nodes": int(n)},
                      name=f"{d} devices, {n} nodes")
            cap = capacity_figures(s)
            row = {"devices": d, "nodes_per_region": n, "connection_limit": limit,
                   "rate_limit_per_s": rate}
            ok = True
            for k in ("n_minus_1", "n_minus_2"):
                c = cap.get(k)
                conns = c["connections_per_node_max"] if c else np.nan
                peak = c["peak_reconnects_per_s"] if c else np.nan
                row[f"{k}_connections"] = conns
                row[f"{k}_peak_reconnects_per_s"] = peak
                fits = c is not None and (limit is None or conns <= limit) and \
                    (rate is None or peak <= rate * 1.0001)
                row[f"{k}_fits"] = fits
                ok = ok and fits
            row["fits"] = ok
            rows.append(row)
    return pd.DataFrame(rows)


def smallest(table: pd.DataFrame) -> pd.DataFrame:
    """Per fleet size, the smallest nodes per region that fits (NaN: none in the range)."""
    fits = table[table["fits"]].groupby("devices")["nodes_per_region"].min()
    return pd.DataFrame({"devices": sorted(table["devices"].unique())}).assign(
        nodes_per_region=lambda d: d["devices"].map(fits))


def plot(table: pd.DataFrame, path: Path, title: str) -> Path:
    """The feasible region: fleet size x nodes per region, green where N-1 and N-2 fit; each
    cell says the worst survivor's load after N-2 against the limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    devices = sorted(table["devices"].unique())
    nodes = sorted(table["nodes_per_region"].unique())
    grid = np.zeros((len(nodes), len(devices)))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(devices), 1.2 + 0.6 * len(nodes)))
    for row in table.itertuples():
        i, j = nodes.index(row.nodes_per_region), devices.index(row.devices)
        grid[i, j] = 2 if row.fits else (1 if row.n_minus_1_fits else 0)
        load = row.n_minus_2_connections if row.n_minus_2_connections == row.n_minus_2_connections \
            else row.n_minus_1_connections
        ax.text(j, i, f"{load / 1000:.0f}k", ha="center", va="center", fontsize=8)
    ax.imshow(grid, cmap=ListedColormap(["#e8a0a0", "#f0d890", "#a0d8a0"]), vmin=0, vmax=2,
              origin="lower", aspect="auto")
    ax.set_xticks(range(len(devices)), [f"{d / 1000:g}k" for d in devices])
    ax.set_yticks(range(len(nodes)), nodes)
    ax.set_xlabel("devices (all regions)")
    ax.set_ylabel("nodes per region")
    limit = table["connection_limit"].iloc[0]
    ax.set_title(f"{title}\ngreen: N-1 and N-2 fit; yellow: N-1 only; red: neither\n"
                 f"cells: connections on the busiest survivor after N-2 (limit {limit / 1000:g}k)"
                 if limit else title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
