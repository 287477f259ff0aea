"""`twin capacity`: nodes per region for a growth path of devices, from measured load costs and VM
sizes (`--vm`), or from the topology's assumed `overload_connections` when it names no size."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sim.spec import Spec, load_spec
from twin import usage


def _vms(text: str) -> list[str]:
    from sim.resources import vm_catalogue

    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in vm_catalogue()]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{','.join(bad) or text!r}: allowed "
                                         f"{', '.join(vm_catalogue())}")
    return names


def cmd_capacity(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    for out in (args.csv, args.plot):
        if out:
            usage.check_writable(Path(out))
    if max(args.devices) > 100_000_000:
        raise usage.UsageError(f"--devices {max(args.devices):,}: at most 100,000,000 (clients.count)")
    if args.max_nodes > 64:
        raise usage.UsageError(f"--max-nodes {args.max_nodes}: at most 64 (cluster.nodes)")
    if args.vm or spec.cluster.vm or spec.cluster.vcpu:
        return _from_costs(spec, args)
    if args.prices or args.cautious:
        raise usage.UsageError("--prices / --cautious: only with --vm (a plan from load costs)")
    return _from_overload(spec, args)


def _from_costs(spec: Spec, args: argparse.Namespace) -> int:
    from sim.plots import file_stem
    from sim.resources import published_points, spec_costs
    from studies.variants import apply
    from studies.vm_plan import DEFAULT_VMS, PricesError, plan, read_prices
    from studies.vm_plot import plot

    if spec.cluster.load_costs is None:
        raise usage.UsageError(f"{args.spec}: cluster.load_costs is not set: a plan from VM sizes "
                               "needs a load-cost file (e.g. calibration/emqx-5.8.9-load-facts.json)")
    try:
        prices = read_prices(Path(args.prices)) if args.prices else None
    except PricesError as err:
        raise usage.UsageError(str(err)) from None
    vms = args.vm or ([spec.cluster.vm] if spec.cluster.vm else list(DEFAULT_VMS))
    console = Console() if Console().is_terminal else Console(width=150)  # a pipe: whole rows
    aside = {k: getattr(spec.cluster, k) for k in ("overload_connections", "max_conn_rate_per_s",
                                                   "vcpu", "memory_gib")
             if getattr(spec.cluster, k) is not None}  # the plan sizes nodes from the catalogue
    if aside:
        print("set aside for the plan (limits from the load costs, sizes from --vm or the catalogue): " +
                      ", ".join(f"cluster.{k} = {v:g}" for k, v in aside.items()))
        spec = apply(spec, {f"cluster.{k}": None for k in aside}, name=spec.meta.name)
    bar, tick = _progress(len(args.devices) * len(vms))
    with bar:
        table = plan(spec, args.devices, vms, args.max_nodes, upper=args.cautious, prices=prices,
                     on_done=tick)
    costs = spec_costs(apply(spec, {"cluster.load_costs_bound": "high" if args.cautious
                                    else "value"}, name=spec.meta.name))
    assert costs is not None
    _print_plan(console, table, args.max_nodes)
    console.print(f"costs: {costs.name} ({'upper ends of the 95 % intervals' if args.cautious else 'values'})"
                  + ("; a STAND-IN, not EMQX" if costs.standin else "")
                  + (f"; not measured, counted as 0: {', '.join(costs.missing)}" if costs.missing
                     else ""))
    console.print("assumption: a core-second measured in the lab is one on a VM's vCPU; beside "
                  "EMQX's published points:")
    for p in published_points(spec_costs(spec) or costs):  # values and upper ends, side by side
        console.print(f"  {p['point']}: {p['resource']} published {p['published']}, predicted "
                      f"{p['predicted']:.3g} (upper costs {p['predicted_high']:.3g})")
    path = plot(table, Path(args.plot or f"out/{file_stem(spec.meta.name)}-capacity.png"),
                f"{spec.meta.name}: nodes per region from {costs.name}", spec.cluster.cpu_headroom)
    print(f"plot: {path}")
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def _pct(v) -> str:
    return "-" if v is None or v != v else f"{100 * v:.0f} %"


def _print_plan(console: Console, df, max_nodes: int) -> None:
    t = Table(box=None, pad_edge=False, title="nodes per region holding N-1 / N-2 within the "
              "limits (CPU headroom, memory alarm 70 %, flows); steady use of the busiest survivor "
              "after N-2 as a share of each limit; its peak through the N-2 storm")
    cols = ["devices", "VM", "N-1", "N-2", "binding", "CPU", "memory", "flows",
            "storm CPU 60 s", "storm memory", "all back (s)"]
    if "monthly_cost" in df:
        cols.append("cost / month")
    for c in cols:
        t.add_column(c, justify="right")
    for r in df.to_dict("records"):
        n1, n2 = r["nodes_n_minus_1"], r["nodes_n_minus_2"]
        cells = [f"{r['devices']:,}", r["vm"],
                 f"{n1:.0f}" if n1 == n1 else f"> {max_nodes}",
                 f"{n2:.0f}" if n2 == n2 else f"> {max_nodes}",
                 str(r.get("n_minus_2_binding", "-")),
                 _pct(r.get("n_minus_2_cpu")), _pct(r.get("n_minus_2_memory")),
                 _pct(r.get("n_minus_2_flows")), _pct(r.get("n_minus_2_storm_alarm_cpu_fraction")),
                 _pct(r.get("n_minus_2_storm_peak_memory_fraction")),
                 f"{r.get('n_minus_2_storm_all_back_s', float('nan')):.0f}"]
        if "monthly_cost" in df:
            v = r.get("monthly_cost")
            cells.append("-" if v is None or v != v else f"{v:,.0f}")
        t.add_row(*cells)
    console.print(t)


def _from_overload(spec: Spec, args: argparse.Namespace) -> int:
    from sim.plots import file_stem
    from studies.capacity import plot, size_table, smallest

    if not (spec.cluster.overload_connections or spec.cluster.max_connections):
        raise usage.UsageError(f"{args.spec}: cluster.overload_connections (or max_connections) is "
                               "not set: there is no per-node capacity to plan against (give --vm "
                               "to plan from load costs)")
    table = size_table(spec, args.devices, list(range(spec.cluster.min_nodes_up + 1,
                                                       args.max_nodes + 1)))
    best = smallest(table)
    for row in best.itertuples():
        n = row.nodes_per_region
        print(f"{row.devices:>10,} devices: " + (f"{n:.0f} nodes per region" if n == n else
                                                 f"no size up to {args.max_nodes} nodes fits"))
    path = plot(table, Path(args.plot or f"out/{file_stem(spec.meta.name)}-capacity.png"),
                f"{spec.meta.name}: nodes per region for N-1 and N-2")
    print(f"plot: {path}")
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def _progress(total: int):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("capacity plan"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), transient=True)
    task = bar.add_task("plan", total=total)
    return bar, lambda: bar.advance(task)


def register(sub) -> None:
    ca = sub.add_parser("capacity", help="nodes (and VM sizes) per region for a growth path of "
                        "devices")
    ca.add_argument("spec")
    ca.add_argument("--devices", type=usage.positive_ints, default=[100_000, 250_000, 500_000, 1_000_000],
                    metavar="N,N,...", help="fleet sizes (default 100k,250k,500k,1M)")
    ca.add_argument("--vm", type=_vms, metavar="SIZE,...", help="Azure sizes to plan with, e.g. "
                    "D4s_v5,D8s_v5,D16s_v5 (costs from cluster.load_costs)")
    ca.add_argument("--cautious", action="store_true", help="each cost at the upper end of its "
                    "95 %% interval")
    ca.add_argument("--prices", metavar="TOML", help="[price] SIZE = monthly cost per VM (not "
                    "shipped: prices are not facts)")
    ca.add_argument("--max-nodes", type=usage.positive_int, default=8, metavar="N")
    ca.add_argument("--plot", metavar="PNG", help="default out/<topology>-capacity.png")
    ca.add_argument("--csv", metavar="OUT")
    ca.set_defaults(func=cmd_capacity)
