"""`twin compare`, `twin sweep`, `twin sensitivity`: the studies (studies/) on the command line
(capacity: twin/capacity_cli.py). Every argument is checked before any simulation starts."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sim.spec import load_spec
from twin import usage


def _fmt(v) -> str:
    if v is None or v != v:  # None or NaN
        return "-"
    return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:.3g}"


def print_table(df, console: Console | None = None) -> None:
    """metric | design | value [95 % CI] | difference to the baseline [95 % CI]."""
    console = console or Console()
    table = Table(box=None, pad_edge=False, title=f"baseline: {df['baseline'].iloc[0]}")
    for col in ("metric", "design", "value [95 % CI]", "vs baseline [95 % CI]"):
        table.add_column(col, overflow="fold")
    for metric, sub in df.groupby("metric", sort=False):
        for i, row in enumerate(sub.itertuples()):
            value = _fmt(row.value) + ("" if row.lo != row.lo else f" [{_fmt(row.lo)}, {_fmt(row.hi)}]")
            if row.zero_in_ci is None:
                diff = "-" if row.diff is None else f"{row.diff:+,.4g}"
            else:
                diff = f"{row.diff:+,.4g} [{row.diff_lo:+,.4g}, {row.diff_hi:+,.4g}]" + (
                    " no difference shown" if row.zero_in_ci else "")
            table.add_row(f"{metric} ({row.unit})" if i == 0 else "", row.design, value, diff)
    console.print(table)


def _study_specs(paths: list[str], args: argparse.Namespace):
    specs = []
    for p in paths:
        spec = usage.with_overrides(load_spec(p), argparse.Namespace(**{**vars(args), "spec": p}))
        specs.append(spec)
    names = [s.meta.name for s in specs]
    for i, s in enumerate(specs):  # two files with one name: tell them apart in the table
        if names.count(s.meta.name) > 1:
            specs[i] = s.model_copy(update={"meta": s.meta.model_copy(
                update={"name": f"{s.meta.name} #{i + 1}"})})
    return specs


def cmd_compare(args: argparse.Namespace) -> int:
    from studies.compare import compare, forest_plot

    paths = list(args.specs)
    if args.baseline:  # the baseline goes first (named once, wherever it was)
        if args.baseline in paths:
            paths.remove(args.baseline)
        paths.insert(0, args.baseline)
    if len(paths) < 2:
        raise usage.UsageError("compare: give at least two topology files")
    for out in (args.csv, args.plot):
        if out:
            usage.check_writable(Path(out))
    specs = _study_specs(paths, args)
    bar, tick = usage.progress_bar(len(specs), "compare")
    with bar:
        df = compare(specs, workers=args.workers, use_cache=not args.no_cache, on_done=tick)
    print_table(df)
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    from sim.plots import file_stem

    plot = Path(args.plot or f"out/compare-{file_stem(specs[0].meta.name)}.png")
    print(f"plot: {forest_plot(df, plot)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from studies.sweep import designs, sweep, write_table
    from studies.variants import VariantError, load_variants, parse_set

    if bool(args.set) == bool(args.variants):
        raise usage.UsageError("sweep: give --set KEY=V1,V2 (a grid) or --variants FILE, one of them")
    for out in (args.csv, args.parquet):
        if out:
            usage.check_writable(Path(out))
    spec = usage.with_overrides(load_spec(args.spec), args)
    try:
        grid = parse_set(args.set) if args.set else None
        variants = load_variants(Path(args.variants)) if args.variants else None
        todo = designs(spec, grid, variants)  # every design validated before any runs
    except VariantError as err:
        raise usage.UsageError(str(err)) from None
    bar, tick = usage.progress_bar(len(todo), f"sweep {spec.meta.name}")
    with bar:
        df = sweep(spec, grid, variants, workers=args.workers, use_cache=not args.no_cache,
                   on_done=tick)
    print_table(df)
    for path in write_table(df, Path(args.csv) if args.csv else None,
                            Path(args.parquet) if args.parquet else None):
        print(f"wrote {path}")
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from sim.analytic import AnalyticUnsupported, solve
    from sim.plots import file_stem
    from studies import sensitivity as sens
    from studies.variants import VariantError, apply

    spec = usage.with_overrides(load_spec(args.spec), args)
    if args.csv:
        usage.check_writable(Path(args.csv))
    if not spec.uncertainty:
        raise usage.UsageError(f"{args.spec}: no [uncertainty] table: nothing to vary (give dotted "
                               "keys with {{ low, high, reason }})")
    try:
        for key, u in spec.uncertainty.items():  # every end of every range is a valid design
            for x in (u.low, u.high):
                apply(spec, {key: sens._value(spec, key, x)})
    except (VariantError, KeyError, IndexError, TypeError) as err:
        raise usage.UsageError(f"{args.spec}: uncertainty: {err}") from None
    if args.evaluator == "exact":
        try:
            solve(spec)
        except AnalyticUnsupported as err:
            raise usage.UsageError(f"--evaluator exact: {args.spec}: {err}") from None
        evaluator = sens.exact
    else:
        evaluator = lambda s: sens.simulated(s, workers=args.workers)  # noqa: E731
    df = sens.tornado(spec, evaluator, flip_steps=args.flip_steps)
    budget = sens._budget(spec)
    for metric, sub in df.groupby("metric", sort=False):
        table = Table(box=None, pad_edge=False,
                      title=f"{sens.METRICS.get(metric, metric)}: as written {sub['at_base'].iloc[0]:.4g}")
        for col in ("input (low .. high)", "at low", "at high", "verdict flips at"):
            table.add_column(col, overflow="fold")
        for r in sub.itertuples():
            table.add_row(f"{r.input} ({r.low:g} .. {r.high:g})", f"{r.at_low:.4g}", f"{r.at_high:.4g}",
                          ("-" if budget is None else "not in range") if r.flips_at is None
                          or r.flips_at != r.flips_at else f"{r.flips_at:.4g}")
        Console().print(table)
    out = Path(args.plots)
    for metric in df["metric"].unique():
        path = sens.tornado_plot(df, metric, out / f"{file_stem(spec.meta.name)}-tornado-{metric}.png",
                                 f"{spec.meta.name}: {sens.METRICS.get(metric, metric)}, each input "
                                 "at its low and high", sens._budget(spec))
        print(f"plot: {path}")
    if args.sobol:
        sob = sens.sobol(spec, evaluator, samples=args.sobol)
        Console().print(sob.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.csv:
            sob.to_csv(Path(args.csv).with_suffix(".sobol.csv"), index=False)
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def register(sub, run_opts) -> None:
    c = sub.add_parser("compare", help="designs side by side: paired differences with 95 %% CIs")
    c.add_argument("specs", nargs="+", help="topology files")
    c.add_argument("--baseline", metavar="SPEC", help="the design the others are compared to "
                   "(default: the first)")
    _shared(c)
    c.add_argument("--plot", metavar="PNG", help="forest plot (default out/compare-<baseline>.png)")
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="a topology over a grid of edits or named variants")
    run_opts(s)
    s.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                   help="dotted key and its values, e.g. cluster.nodes=3,4,5 (repeat for a grid)")
    s.add_argument("--variants", metavar="TOML", help="[variants.NAME] tables of dotted keys")
    s.add_argument("--csv", metavar="OUT")
    s.add_argument("--parquet", metavar="OUT")
    s.add_argument("--no-cache", action="store_true", help="run every design again")
    s.set_defaults(func=cmd_sweep)

    se = sub.add_parser("sensitivity", help="which uncertain input decides the verdict")
    run_opts(se)
    se.add_argument("--evaluator", choices=["simulated", "exact"], default="simulated",
                    help="simulated runs (cached), or twin analytic's exact answer where it has one")
    se.add_argument("--flip-steps", type=usage.non_negative_int, default=3, metavar="N",
                    help="bisections locating where the verdict flips (default 3)")
    se.add_argument("--sobol", type=usage.positive_int, metavar="N",
                    help="also Sobol indices from N x (inputs + 2) evaluations")
    se.add_argument("--plots", default="out", metavar="DIR")
    se.add_argument("--csv", metavar="OUT")
    se.set_defaults(func=cmd_sensitivity)



def _shared(p: argparse.ArgumentParser) -> None:
    p.add_argument("--years", type=usage.positive_float, help="simulated years per replication")
    p.add_argument("--replications", type=usage.positive_int)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=usage.positive_int, help="processes (default: all cores)")
    p.add_argument("--csv", metavar="OUT")
    p.add_argument("--no-cache", action="store_true", help="run every design again")
