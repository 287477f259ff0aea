"""The capacity plan at a glance: nodes per region each VM size needs as the fleet grows (what
binds it written on the bar), and the busiest survivor's peak through the N-2 storm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.resources import CPU_ALARM, MEMORY_ALARM

CLIP = 120  # % of the VM: beyond it a point sits on the edge with its value written
SHORT = {"cpu": "CPU", "memory": "mem", "flows": "flows"}


def plot(table: pd.DataFrame, path: Path, title: str, headroom: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    devices = sorted(table["devices"].unique())
    vms = list(dict.fromkeys(table["vm"]))
    width = 0.8 / len(vms)
    x = np.arange(len(devices))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(9.0, 2.2 + 1.9 * len(devices)), 7.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 2]})
    top = np.nanmax(table[["nodes_n_minus_1", "nodes_n_minus_2"]].to_numpy(dtype=float),
                    initial=3)
    for k, vm in enumerate(vms):
        sub = table[table["vm"] == vm].set_index("devices").reindex(devices)
        pos = x - 0.4 + width * (k + 0.5)
        n2 = sub["nodes_n_minus_2"].to_numpy(dtype=float)
        bars = ax.bar(pos, np.nan_to_num(n2, nan=top + 1), width * 0.9, label=vm, color=f"C{k}")
        for b, v, bind in zip(bars, n2, sub.get("n_minus_2_binding", [None] * len(devices)),
                              strict=True):
            if v != v:
                b.set_alpha(0.25)
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.1,
                    (f"{v:.0f}" if v == v else "none") + f"\n{SHORT.get(bind, '')}",
                    ha="center", va="bottom", fontsize=7)
        ax.plot(pos, sub["nodes_n_minus_1"], "k_", ms=12, mew=2,
                label="N-1 only" if k == 0 else None)
        for col, marker, fill in (("alarm_cpu", "o", f"C{k}"), ("peak_memory", "s", "none")):
            y = 100 * sub[f"n_minus_2_storm_{col}_fraction"].to_numpy(dtype=float)
            for p, v, ok in zip(pos, np.minimum(y, CLIP), n2 == n2, strict=True):
                ax2.plot(p, v, marker, color=f"C{k}", mfc=fill, alpha=1.0 if ok else 0.3)
            for p, v in zip(pos, y, strict=True):
                if v > CLIP:
                    ax2.annotate(f"{v:.0f} %", (p, CLIP), (0, -14 if marker == "s" else 6),
                                 textcoords="offset points", ha="center", fontsize=6)
    ax.set_ylabel("nodes per region (N-2 holds)")
    ax.set_ylim(0, top + 2.5)
    ax.set_title(f"{title}\nbars: nodes for N-2, labelled with what binds (faded: none up to the "
                 f"maximum)\nblack ticks: enough for N-1 only; CPU headroom {100 * headroom:.0f} %",
                 fontsize=9)
    ax.legend(fontsize=8, ncol=len(vms) + 1, loc="upper left")
    ax2.axhline(100 * CPU_ALARM, color="red", ls="--", lw=1)
    ax2.axhline(100 * MEMORY_ALARM, color="purple", ls=":", lw=1)
    handles = [Line2D([], [], marker="o", color="grey", ls="none", label="CPU, 60 s mean"),
               Line2D([], [], marker="s", color="grey", mfc="none", ls="none", label="memory peak"),
               Line2D([], [], color="red", ls="--", label="CPU alarm 80 %"),
               Line2D([], [], color="purple", ls=":", label="memory alarm 70 %")]
    ax2.legend(handles=handles, fontsize=7, ncol=4, loc="upper left")
    ax2.set_ylabel("busiest survivor through\nthe N-2 storm (% of the VM)")
    ax2.set_ylim(0, CLIP + 25)
    ax2.set_xticks(x, [f"{d / 1e6:g} M" if d >= 1e6 else f"{d / 1e3:g} k" for d in devices])
    ax2.set_xlabel("devices (all regions)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
