"""`twin simulate`, `twin analytic`, `twin storm`: the model itself on the command line."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from rich.console import Console

from sim.spec import Spec, load_spec
from twin.usage import UsageError
from twin.usage import check_writable as _check_writable
from twin.usage import positive_float as _positive_float
from twin.usage import positive_int as _positive_int
from twin.usage import with_overrides as _with_overrides
from twin.usage import write_output as _write


def _executor(args: argparse.Namespace):
    if not getattr(args, "dask", None):
        return None, None
    if args.dask != "local" and not re.fullmatch(r"(tcp|tls)://[^:/\s]+:\d{1,5}", args.dask):
        raise UsageError(f"--dask = {args.dask!r}: allowed 'local' or a scheduler address "
                         "tcp://HOST:PORT")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--dask: dask.distributed is not installed (pip install 'mqtt-ha-twin[dask]')") from None
    if args.dask == "local":
        client = Client(LocalCluster(n_workers=args.workers or 2, threads_per_worker=1,
                                     processes=True, dashboard_address=None,
                                     silence_logs=logging.ERROR))
    else:
        try:
            client = Client(args.dask, timeout=5)
        except (OSError, TimeoutError) as err:
            raise UsageError(f"--dask = {args.dask!r}: no scheduler answered within 5 s "
                             f"({type(err).__name__})") from None
    return client.get_executor(), client


def cmd_simulate(args: argparse.Namespace) -> int:
    from sim.metrics import summarise, to_json
    from sim.montecarlo import run
    from sim.report import markdown, print_report

    spec = _with_overrides(load_spec(args.spec), args)
    if args.precision is not None and not args.precision < 1:
        raise UsageError(f"--precision = {args.precision}: a relative half-width in (0, 1), "
                         "e.g. 0.05")
    for out in (args.json, args.markdown):  # refuse before the work, not after it
        if out:
            _check_writable(Path(out))
    if args.plots:
        _check_writable(Path(args.plots) / "probe.png")
    if not 0 < args.rare_precision < 1:
        raise UsageError(f"--rare-precision = {args.rare_precision}: a relative half-width in (0, 1)")
    if args.estimator == "rare":
        from sim.rare import RareUnsupported, check_supported

        try:
            check_supported(spec)
        except RareUnsupported as err:
            raise UsageError(f"--estimator rare: {args.spec}: {err}") from None
    executor, client = _executor(args)
    try:
        outcome = run(spec, executor=executor, workers=args.workers, precision=args.precision,
                      max_replications=args.max_replications)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None) if args.dask == "local" else None
            client.close(timeout=2)
            if cluster is not None:
                cluster.close(timeout=2)
    summary = summarise(spec, outcome.results, outcome.stopped_by)
    if args.estimator != "plain":
        summary = _rare_if_needed(spec, summary, args)
    print_report(summary)
    if args.json:
        _write(Path(args.json), to_json(summary))
    if args.markdown:
        _write(Path(args.markdown), markdown(summary))
    if args.plots:
        from sim.plots import write_plots

        for path in write_plots(summary, outcome.results, Path(args.plots)):
            print(f"plot: {path}")
    return 0


def _rare_if_needed(spec: Spec, summary: dict, args: argparse.Namespace) -> dict:
    """auto: when plain replications leave service unavailability looser than --rare-precision
    and the design fits the rare-event estimator, estimate it there and keep the tighter one."""
    from sim.metrics import plain_relative_half_width, use_rare_estimate
    from sim.rare import RareUnsupported, check_supported, estimate

    plain = plain_relative_half_width(summary)
    if args.estimator == "auto":
        try:
            check_supported(spec)
        except RareUnsupported as err:
            summary["estimator"]["rare_not_used"] = str(err)
            return summary
        if plain <= args.rare_precision:
            return summary
    print(f"rare-event estimator: service unavailability to +-{args.rare_precision:.0%} "
          f"(at most {args.rare_seconds:g} s) ...", file=sys.stderr, flush=True)
    est = estimate(spec, precision=args.rare_precision, max_seconds=args.rare_seconds)
    if args.estimator == "rare" or est.relative_half_width < plain:
        return use_rare_estimate(spec, summary, est)
    return summary


def cmd_analytic(args: argparse.Namespace) -> int:
    from sim.analytic import AnalyticUnsupported, solve
    from sim.metrics import plain_relative_half_width, summarise, use_rare_estimate
    from sim.montecarlo import replicate_longrun, run
    from sim.rare import RareUnsupported, estimate
    from sim.report import nines, unavailability

    spec = _with_overrides(load_spec(args.spec), args)
    try:
        exact = solve(spec)
    except AnalyticUnsupported as err:
        raise UsageError(f"{args.spec}: no closed form: {err}") from None
    outcome = run(spec, workers=args.workers, worker=replicate_longrun)
    summary = summarise(spec, outcome.results)
    if plain_relative_half_width(summary) > 0.1:  # rare outages: the estimator made for them
        try:
            summary = use_rare_estimate(spec, summary, estimate(spec, precision=0.1, max_seconds=120))
        except RareUnsupported:
            pass
    sim = summary["availability"]["service"]
    eps = 1e-12  # equal numbers are inside, whatever the rounding
    inside = sim["ci95"][0] - eps <= exact.service <= sim["ci95"][1] + eps
    console = Console()
    console.print(f"method: {exact.method}")

    def line(label: str, a: float) -> None:
        console.print(f"{label:<24} {nines(a):<16} unavailability {unavailability(a)}")

    if exact.node is not None:
        line("node", exact.node)
    line(f"cluster (>= {spec.cluster.min_nodes_up} up)", exact.cluster)
    line("load balancer", exact.lb)
    line("region", exact.region)
    line("service, analytic", exact.service)
    line("service, simulated", sim["mean"])
    console.print(f"{'  95 % CI':<24} {nines(sim['ci95'][0])} .. {nines(sim['ci95'][1])}: "
                  f"{'analytic inside' if inside else 'analytic OUTSIDE'} ({sim['interval']})")
    return 0


def cmd_storm(args: argparse.Namespace) -> int:
    from sim.spec import NODE_MODES
    from sim.storm import plot_storm, run_storm, storm_summary

    spec = load_spec(args.spec)
    n = spec.region_sizes()[0]
    if not 0 <= args.fail < n:
        raise UsageError(f"--fail = {args.fail}: must be a node index 0..{n - 1}")
    if args.mode not in NODE_MODES:
        raise UsageError(f"--mode = {args.mode!r}: allowed {', '.join(NODE_MODES)}")
    if not spec.clients.count:
        raise UsageError(f"{args.spec}: clients.count = 0: nothing to storm")
    sc, result = run_storm(spec, args.fail, f"node.{args.mode}", return_after_s=args.return_after)
    for line in storm_summary(spec, sc, result):
        print(line)
    lb = spec.lb
    title = (f"{spec.meta.name}: node {args.fail} of {n} {args.mode}, {len(result.outage_s):,} of its "
             f"clients; {lb.algorithm if lb else 'no'} LB, {lb.probe.protocol if lb else '-'} probe, "
             f"sessions {spec.cluster.sessions}")
    from sim.plots import file_stem

    plot = Path(args.plot or f"out/{file_stem(spec.meta.name)}-storm-node{args.fail}-{args.mode}.png")
    path = plot_storm(sc, result, plot, title)
    print(f"plot: {path}")
    return 0


def register(sub, run_opts) -> None:
    s = sub.add_parser("simulate", help="availability study of a topology")
    run_opts(s)
    s.add_argument("--json", metavar="OUT", help="write the metrics JSON (DESIGN §2)")
    s.add_argument("--markdown", metavar="OUT", help="write the report as Markdown")
    s.add_argument("--plots", metavar="DIR", help="write PNG plots")
    s.add_argument("--precision", type=_positive_float, metavar="R",
                   help="add replications until the relative CI half-width of unavailability <= R")
    s.add_argument("--max-replications", type=_positive_int, default=2000)
    s.add_argument("--estimator", choices=["auto", "plain", "rare"], default="auto",
                   help="service availability by plain replications, or by importance sampling "
                        "for rare outages (auto: when plain is looser than --rare-precision)")
    s.add_argument("--rare-precision", type=_positive_float, default=0.1, metavar="R",
                   help="relative 95 %% half-width the rare-event estimator aims for (default 0.1)")
    s.add_argument("--rare-seconds", type=_positive_float, default=120.0, metavar="S",
                   help="time limit of the rare-event estimator (default 120)")
    s.add_argument("--dask", metavar="ADDRESS", help="run on a dask.distributed scheduler ('local' starts one)")
    s.set_defaults(func=cmd_simulate)

    a = sub.add_parser("analytic", help="exact node-level answer beside the simulation")
    run_opts(a)
    a.set_defaults(func=cmd_analytic)

    st = sub.add_parser("storm", help="one failover in detail, with a plot")
    st.add_argument("spec")
    st.add_argument("--fail", type=int, default=0, metavar="NODE", help="node index (default 0)")
    st.add_argument("--mode", default="crash", help="crash, vm, hang, disk or partition")
    st.add_argument("--return-after", type=_positive_float, default=float("inf"), metavar="S",
                    help="seconds until the failed node is healthy again (default: never)")
    st.add_argument("--plot", metavar="PNG", help="default out/<topology>-storm-node<N>-<mode>.png")
    st.set_defaults(func=cmd_storm)
