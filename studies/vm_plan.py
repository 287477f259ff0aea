"""Capacity from measured costs: for each fleet size and VM size, the smallest nodes per region
whose survivors hold N-1 (and N-2) within the planning limits (CPU headroom, EMQX's memory alarm,
the VM's flows), the binding resource, and each survivor's peak through the reconnect storm.

Steady loads come from the failover transient's final placement (the topology's own LB and
clients), the storm from its arrivals, both at fluid scale (`MAX_SIMULATED` clients stand for the
region's, each client's experience kept): see sim/failover_load.py.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.failover_load import storm_figures, survivor_load
from sim.pools import POOL_SALT, region_clients, scenario_for
from sim.resources import LoadCosts, binding, node_size, spec_costs, steady_load, utilisation, vm_catalogue
from sim.spec import Spec
from sim.transient import simulate
from studies.variants import apply

MAX_SIMULATED = 20_000  # clients per transient: the storm's shape is kept, its cost bounded
DEFAULT_VMS = ("D4s_v5", "D8s_v5", "D16s_v5")


class PricesError(ValueError):
    """A prices file the plan cannot use (one line)."""


def read_prices(path: Path) -> dict[str, float]:
    """`[price] D8s_v5 = 280.0`: monthly cost per VM, in the user's currency (not shipped)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PricesError(f"--prices {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise PricesError(f"--prices {path}: not a TOML prices file ({err})"[:200]) from None
    prices = data.get("price")
    if not isinstance(prices, dict) or not prices:
        raise PricesError(f"--prices {path}: no [price] table (e.g. D8s_v5 = 280.0 per month)")
    for vm, p in prices.items():
        if vm not in vm_catalogue() or not isinstance(p, int | float) or p < 0:
            raise PricesError(f"--prices {path}: price.{vm} = {p!r}: a VM of "
                              f"{', '.join(vm_catalogue())} with a price >= 0")
    return {k: float(v) for k, v in prices.items()}


def loss_figures(spec: Spec, costs: LoadCosts, lost: int) -> dict[str, Any] | None:
    """After `lost` crashes in the largest region: the busiest survivor's steady use of each
    limit, and the storm figures of the last loss."""
    clients = region_clients(spec)
    region = int(np.argmax(clients))
    n = spec.region_sizes()[region]
    if n - lost < 1 or not clients[region]:
        return None
    scale = min(1.0, MAX_SIMULATED / clients[region])
    sc = scenario_for(spec, region, "node.crash", n - lost + 1, float("inf"), scale)
    rng = np.random.default_rng(np.random.SeedSequence(spec.simulation.seed,
                                                       spawn_key=(POOL_SALT, 11, lost)))
    r = simulate(sc, rng)
    size = node_size(spec)
    if size is None:
        raise ValueError("cluster.vm (or vcpu / memory_gib): required for a plan")
    survivors = [j for j in range(n) if j not in sc.failed and j not in sc.down_before]
    busiest = float(r.counts_after[survivors].max()) / scale
    util = utilisation(steady_load(spec, busiest), size, costs)
    storm = storm_figures(survivor_load(sc, r, costs, scale), size)
    return {"connections": busiest, "util": util, "storm": storm, "cascade": r.cascade,
            "admission_per_s": (sc.max_conn_rate_per_s or float("inf")) / scale}


def plan(spec: Spec, devices: list[int], vms: list[str], max_nodes: int = 8,
         upper: bool = False, prices: dict[str, float] | None = None,
         on_done=None) -> pd.DataFrame:
    """One row per (devices, vm): for N-1 and for N-2, the smallest nodes per region (from
    min_nodes_up + the loss) whose survivors in the largest region fit (`fits`), with the figures
    at that size, or at `max_nodes` where none does (NaN nodes)."""
    bound = "high" if upper else "value"
    costs = spec_costs(apply(spec, {"cluster.load_costs_bound": bound}))
    if costs is None:
        raise ValueError("cluster.load_costs: required for a plan from measured costs")
    regions = len(spec.region_sizes())
    rows = []
    for d in devices:
        for vm in vms:
            row: dict[str, Any] = {"devices": d, "vm": vm, "costs": costs.bound}
            for lost in (1, 2):
                found = None
                for n in range(spec.cluster.min_nodes_up + lost, max_nodes + 1):
                    s = apply(spec, {"clients.count": int(d), "cluster.nodes": n,
                                     "cluster.vm": vm, "cluster.vcpu": None, "cluster.memory_gib": None,
                                     "cluster.load_costs_bound": bound},
                              name=f"{d} devices, {n} x {vm}")
                    if n < max_nodes and not may_fit(s, costs, lost):
                        continue  # even an even spread breaks a limit: no transient needed
                    found = (n, loss_figures(s, costs, lost))
                    if found[1] is not None and fits(found[1]):
                        break
                else:
                    found = (None, found[1] if found else None)
                _row(row, lost, found)
            if prices and vm in prices and row["nodes_n_minus_2"] == row["nodes_n_minus_2"]:
                row["monthly_cost"] = prices[vm] * row["nodes_n_minus_2"] * regions
            rows.append(row)
            if on_done:
                on_done()
    return pd.DataFrame(rows)


def may_fit(spec: Spec, costs: LoadCosts, lost: int) -> bool:
    """Whether survivors sharing the largest region's clients evenly stay within the limits."""
    size = node_size(spec)
    n = max(spec.region_sizes())
    even = max(region_clients(spec)) / max(n - lost, 1)
    return size is not None and max(utilisation(steady_load(spec, even), size, costs).values()) <= 1


def fits(f: dict[str, Any]) -> bool:
    """Within every planning limit at steady state, every client back, no node out of memory."""
    return max(f["util"].values()) <= 1.0 and not f["cascade"] and \
        f["storm"]["peak_memory_fraction"] < 1.0 and f["storm"]["never_back"] == 0


def _row(row: dict[str, Any], lost: int, found: tuple[int | None, dict[str, Any] | None]
         ) -> None:
    """Columns of one loss count: the nodes found (NaN: none up to max_nodes) and the figures
    at that size (or at max_nodes, where none fits)."""
    n, f = found
    key = f"n_minus_{lost}"
    row[f"nodes_{key}"] = float("nan") if n is None else n
    if f is None:
        return
    util = f["util"]
    row[f"{key}_binding"] = binding(util)
    for res, u in util.items():
        row[f"{key}_{res}"] = u
    row[f"{key}_connections"] = f["connections"]
    for k, v in f["storm"].items():
        row[f"{key}_storm_{k}"] = v
    row[f"{key}_admission_per_s"] = f["admission_per_s"]
    row[f"{key}_cascade"] = f["cascade"]
