"""`twin`: the one place that wires sim and lab together.

Every user mistake ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from sim.spec import Spec, SpecError, load_spec
from twin.usage import EXIT_USAGE, UsageError
from twin.usage import Parser as _Parser
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


def cmd_lab(args: argparse.Namespace) -> int:
    from lab.cluster import Lab, LabConfig, LabError
    from lab.lbconfig import LBSettings

    try:
        if args.lab_command == "run":
            return _lab_run(args)
        profiles = tuple(p for p, on in (("region-b", args.region_b), ("monitoring", args.monitoring))
                         if on)
        lab = Lab(LabConfig(broker=_lab_broker(args), profiles=profiles, image=args.image,
                            lb=LBSettings(probe=args.probe, algorithm=args.algorithm)))
        if args.lab_command == "up":
            lab.up()
            print(f"lab up: brokers {', '.join(lab.brokers())}; MQTT at "
                  f"{lab.endpoint()[0]}:{lab.endpoint()[1]}; HAProxy stats at "
                  f"http://127.0.0.1:{lab.config.stats_port}/stats")
        elif args.lab_command == "down":
            lab.down()
            print("lab down")
        else:
            containers = lab.containers()
            if not containers:
                print("lab is not running")
            for c in sorted(containers, key=lambda c: c.name):
                health = c.attrs["State"].get("Health", {}).get("Status", "")
                print(f"{c.labels.get('com.docker.compose.service', c.name):10s} {c.status:8s} {health}")
            if containers:
                for row in lab.lb_stats():
                    print(f"lb backend {row['name']:10s} {row['status']:6s} sessions {row['sessions']}")
    except (LabError, ValueError) as err:
        raise UsageError(str(err)) from None
    except OSError as err:
        raise UsageError(f"lab: {err}") from None
    return 0


def _lab_broker(args: argparse.Namespace) -> str:
    """--broker, else the broker of the last `twin lab up`, else emqx-local."""
    from lab.cluster import last_broker

    return args.broker or last_broker() or "emqx-local"


def _lab_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lab.runner import run_scenario
    from lab.scenario import load_scenario

    console = Console(stderr=True)
    scenario = load_scenario(args.scenario)
    if args.target:
        scenario = replace(scenario, target=args.target)
    if args.sessions:
        scenario = replace(scenario, sessions=args.sessions)
    out = Path(args.out)
    summaries = run_scenario(scenario, out, args.repeat, broker=_lab_broker(args),
                             progress=lambda msg: console.log(msg), image=args.image)
    table = Table(title=f"{scenario.name}: {len(summaries)} run(s), results in {out}")
    for col in ("run", "target", "outage p50/p95 s", "reconnected", "session present",
                "ack lost", "unacked lost", "dup", "reordered", "valid"):
        table.add_column(col)
    for k, s in enumerate(summaries):
        o = s["client_outage_s"]
        table.add_row(str(k), s["meta"]["target"],
                      "-" if o["p50"] is None else f"{o['p50']:.1f}/{o['p95']:.1f}",
                      f"{s['clients']['seen'] - len(s['clients']['not_reconnected'])}/{s['clients']['seen']}",
                      "-" if s["sessions"]["present_ratio"] is None
                      else f"{s['sessions']['present_ratio'] * 100:.0f} %",
                      str(s["messages"]["acknowledged_lost"]), str(s["messages"]["lost_unacknowledged"]),
                      str(s["messages"]["duplicated"]), str(s["messages"]["reordered"]),
                      "yes" if s.get("valid", True) else "NO")
    Console().print(table)
    for k, s in enumerate(summaries):
        for why in s.get("invalid", []):
            console.print(f"run {k} is not a valid failover measurement: {why}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from sim.calibration import CalibrationError, calibrate, load_results
    from twin import load_cli

    if load_cli.any_load_summary(args.results):
        return load_cli.calibrate_load(args.results, args.out, args.name, _write)
    try:
        results = load_results(args.results)
        out = calibrate(results, args.name or Path(args.out).stem)
    except CalibrationError as err:
        raise UsageError(str(err)) from None
    _write(Path(args.out), json.dumps(out, indent=2, sort_keys=True) + "\n")
    for mode, m in out["modes"].items():
        f, mech, coll = m["client_outage_s"], m["mechanism"], m["collateral"]
        alt = ", ".join(f"{k} {v['ks']:.3f}" for k, v in f["alternatives"].items())
        lat = mech["connack_latency_s"]
        print(f"{mode}: {f['samples']} outages of the failed node's clients from {m['runs']} run(s): "
              f"{f['family']} (KS {f['ks']:.3f}; all: {alt}); median {f['median']:.2f} s, "
              f"p95 {f['p95']:.2f} s")
        probe = mech["probe_timeout_measured_s"]
        print(f"  LB probe timeout measured {probe if probe is not None else float('nan'):.2f} s; "
              f"CONNACK latency median "
              f"{lat['median'] if lat else float('nan'):.3f} s; collateral outages per other client "
              f"{coll['outages_per_other_client']:.2f}; session present {m['session_present_ratio']}; "
              f"acknowledged lost per event {m['acknowledged_lost_per_event']:.2f}")
        store = mech["session_store"]
        windows = "; ".join(f"{k.replace('_', ' ')} {', '.join(f'{w:.1f}' for w in v)} s"
                            for k, v in store["down_s"].items() if v)
        held = "longer than the clients waited" if store["wait_s"] is None \
            else f"{store['wait_s']:.1f} s"
        print(f"  survivors could not open sessions for (per run): {windows or 'no run'}; "
              f"they held a CONNECT {held} meanwhile"
              + (" (measured in other modes)" if store.get("wait_from") == "other modes" else "")
              + f", refused {store.get('refuse_p', 0.0) * 100:.0f} % of a client's later ones"
              + (f", dropped {store['release_drop_p'] * 100:.0f} % of those still held when the "
                 "node counted as down" if store.get("release_drop_p") else ""))
    if out["provenance"]["standin"]:
        print("provenance: stand-in broker (NATS), not EMQX")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sim.calibration import CalibrationError, load_results, validate

    try:
        calibration = json.loads(Path(args.calibration).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"--calibration {args.calibration}: not a calibration file ({err})") from None
    if isinstance(calibration, dict) and calibration.get("kind") == "load_costs":
        from twin import load_cli

        return load_cli.validate_load_costs(args.results, calibration, args.calibration)
    if not isinstance(calibration, dict) or "modes" not in calibration:
        raise UsageError(f"--calibration {args.calibration}: not a calibration file (no 'modes'; "
                         "write one with twin calibrate)")
    try:
        report = validate(load_results(args.results), calibration, seed=args.seed)
    except CalibrationError as err:
        raise UsageError(str(err)) from None
    except KeyError as err:
        raise UsageError(f"{args.calibration}: missing {err} (written by an older twin calibrate? "
                         "calibrate again)") from None
    console = Console()
    console.print(_validation_table(report, args.calibration, args.wide))
    for mode, m in report["modes"].items():
        rel = m.get("release_s")
        if rel:
            console.print(f"{mode}: survivors counted the node down {min(rel['held_out']):.1f}-"
                          f"{max(rel['held_out']):.1f} s after the fault in the held-out runs; "
                          f"{rel['inside'] * 100:.0f} % inside the calibration's "
                          f"{rel['range'][0]:.1f}-{rel['range'][1]:.1f} s")
    for s in report["skipped"]:
        print(f"not replayed: {Path(s['run']).stem} ({s['why']})")
    if args.json:
        _write(Path(args.json), json.dumps(report, indent=2) + "\n")
    if args.plots:
        from sim.plots import validation_cdfs

        print(f"wrote {validation_cdfs(report, Path(args.plots) / 'validation_cdf.png')}")
    return 0


def _validation_table(report: dict, calibration: str, wide: bool):
    """Pooled per mode and per run, at 80 columns; `wide` adds p99, sessions, loss, duplicates
    and collateral outages."""
    from rich.table import Table

    from sim.calibration import ks_spread, meets_targets

    table = Table(title=f"lab vs twin: outages of the failed node's clients, s ({Path(calibration).name})")
    cols = ["run", "mode", "p50 lab/twin", "p95 lab/twin", "KS", "bar"]
    if wide:
        cols[4:4] = ["n", "p99 lab/twin", "session present", "ack lost", "dup", "collateral"]
    for col in cols:
        table.add_column(col, no_wrap=not wide)

    def pct(r, k):
        return f"{r['lab'][k]:.2f}/{r['sim'][k]:.2f} ({r['rel_error'][k] * 100:+.0f}%)"

    def row(name, mode, r, met, extra):
        cells = [name, mode, pct(r, "p50"), pct(r, "p95"), f"{r['ks_distance']:.2f}", met]
        if wide:
            cells[4:4] = [str(r["samples"]["lab"]), pct(r, "p99"), *extra]
        return cells

    for mode, m in report["modes"].items():
        met = "yes" if meets_targets(m) else "NO"
        table.add_row(*row(f"all {m['runs']}", mode, m, met, ["", "", "", ""]), style="bold")
        if wide and m.get("ks_half_of_runs"):
            table.add_row("", "", "", "", ks_spread(m).strip(" ()"), "")
    for r in report["runs"] if wide or len(report["runs"]) <= 12 else []:
        sp, al, du, co = (r[k] for k in ("session_present", "acknowledged_lost", "duplicated",
                                          "collateral_outages"))
        table.add_row(*row(Path(r["run"]).stem, r["mode"], r,
                           "yes" if meets_targets(r, ks=None) else "NO",
                           [f"{sp['lab']:.2f}/{sp['sim']:.2f}" if sp["lab"] is not None else "-",
                            f"{al['lab']}/{al['sim']}", f"{du['lab']}/{du['sim']}",
                            f"{co['lab']}/{co['sim']}"]))
    return table


def cmd_check(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    print(f"{args.spec}: valid ({spec.meta.name}, regions {spec.region_names()}, "
          f"failure modes {list(spec.node.failure.modes())})")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(Spec.model_json_schema(), indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from sim.bench import benchmarks

    if not args.lab_only:
        for name, value, unit in benchmarks(workers=args.workers or 2):
            print(f"{name}: {value:.3f} {unit}", flush=True)
    if args.lab or args.lab_only:
        from lab.cluster import LabError
        from lab.load.bench import lab_benchmarks

        try:
            for name, value, unit in lab_benchmarks():
                print(f"{name}: {value:.6g} {unit}", flush=True)
        except LabError as err:
            raise UsageError(f"bench --lab: {err}") from None
    if args.studies:
        from studies.bench import study_benchmarks

        for name, value, unit in study_benchmarks(workers=args.workers or 2):
            print(f"{name}: {value:.3f} {unit}", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="twin", description="Digital twin of an HA EMQX cluster")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def run_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("spec", help="topology file (models/*.toml)")
        sp.add_argument("--years", type=_positive_float, help="simulated years per replication")
        sp.add_argument("--replications", type=_positive_int)
        sp.add_argument("--seed", type=int)
        sp.add_argument("--start", choices=["stationary", "new"],
                        help="stationary (default): the long run; new: the first years after a rollout")
        sp.add_argument("--workers", type=_positive_int, help="processes (default: all cores)")

    from twin.study_cli import register

    register(sub, run_opts)
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

    def _broker_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--broker", choices=["emqx-local", "emqx", "standin"],
                       help="emqx-local: EMQX packed here from a release tarball "
                       "(lab/images/build.sh TARBALL); emqx: Docker Hub images; standin: NATS "
                       "(default: the running lab's, else emqx-local)")
        p.add_argument("--image", metavar="NAME",
                       help="EMQX only: the EMQX image to run, e.g. emqx/emqx-enterprise:5.8.9 "
                       "(default: EMQX_IMAGE, else the broker's); Enterprise takes its licence "
                       "from EMQX_LICENSE__KEY (unset: the evaluation licence, 25 sessions)")

    lab = sub.add_parser("lab", help="the lab of real brokers behind a real LB")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, parser_class=_Parser)
    for name, text in (("up", "start the lab (writes .env and LB config)"),
                       ("down", "stop and remove the lab"), ("status", "containers and LB view")):
        lp = lab_sub.add_parser(name, help=text)
        _broker_option(lp)
        lp.add_argument("--region-b", action="store_true", help="also region B (2 nodes, WAN link)")
        lp.add_argument("--monitoring", action="store_true", help="also Prometheus with alert rules")
        lp.add_argument("--probe", default="tcp", choices=["tcp", "http", "mqtt"])
        lp.add_argument("--algorithm", default="least_connections",
                        choices=["least_connections", "source_ip", "round_robin", "five_tuple"])
        lp.set_defaults(func=cmd_lab)
    from twin import load_cli

    load_cli.add_parser(lab_sub, _broker_option)
    lr = lab_sub.add_parser("run", help="run a fault scenario (lab/scenarios/*.toml)")
    lr.add_argument("scenario")
    lr.add_argument("--repeat", type=_positive_int, metavar="N")
    lr.add_argument("--out", default="out/lab", metavar="DIR")
    _broker_option(lr)
    lr.add_argument("--sessions", choices=["memory", "durable"],
                    help="in place of the scenario's [lab] sessions (EMQX: durable_sessions off/on; "
                    "stand-in: stream replicas 1/3)")
    lr.add_argument("--target", help="the node to fail, in place of the scenario's target "
                    "(a service name, random, most_subscribers, session_store_leader, ...)")
    lr.set_defaults(func=cmd_lab)

    cal = sub.add_parser("calibrate", help="fit lab results into models/calibration/NAME.json")
    cal.add_argument("results", nargs="+", help="lab summary files or folders")
    cal.add_argument("--out", required=True, metavar="FILE")
    cal.add_argument("--name")
    cal.set_defaults(func=cmd_calibrate)
    val = sub.add_parser("validate", help="lab vs twin, side by side")
    val.add_argument("results", nargs="+", help="held-out lab summary files or folders")
    val.add_argument("--calibration", required=True, metavar="FILE")
    val.add_argument("--json", metavar="OUT")
    val.add_argument("--plots", metavar="DIR", help="write the lab vs twin outage CDFs here")
    val.add_argument("--seed", type=int, default=1)
    val.add_argument("--wide", action="store_true",
                     help="every run and column (p99, sessions, loss, duplicates, collateral)")
    val.set_defaults(func=cmd_validate)

    c = sub.add_parser("check", help="validate a topology file")
    c.add_argument("spec")
    c.set_defaults(func=cmd_check)

    sub.add_parser("schema", help="print the topology JSON schema").set_defaults(func=cmd_schema)

    b = sub.add_parser("bench", help="print speed figures")
    b.add_argument("--workers", type=_positive_int)
    b.add_argument("--studies", action="store_true",
                   help="also sweep the 24-design what-if matrix at the reference's settings (~5 min)")
    b.add_argument("--lab", action="store_true",
                   help="also the load generator's capacity and cost on the stand-in lab (~2 min, "
                   "needs Docker)")
    b.add_argument("--lab-only", action="store_true", help="only the --lab figures")
    b.set_defaults(func=cmd_bench)
    return p


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that `finally` blocks run (pools, lab faults)."""


# How long unwinding may take after Ctrl-C / SIGTERM before the run is ended by force: a lab run
# undoes its faults and stops its containers in `finally` blocks; a simulation only stops workers.
GRACE_S = {"lab": 120.0}
DEFAULT_GRACE_S = 5.0
_grace_s = DEFAULT_GRACE_S


def _watchdog(message: str, code: int) -> None:
    """Unwinding can block where the interrupt landed (inside a process pool's locks, once in
    CI): after the grace time, end the workers this process started and leave."""
    def force() -> None:
        for child in multiprocessing.active_children():
            child.terminate()
        _stop_now(message, code)

    timer = threading.Timer(_grace_s, force)
    timer.daemon = True
    timer.start()


INTERRUPTED = ("twin: interrupted (Ctrl-C); stopped", 130)
TERMINATED = ("twin: terminated (SIGTERM); stopped", 143)


def _on_sigint(signum, frame) -> None:
    _watchdog(*INTERRUPTED)
    raise KeyboardInterrupt


def _on_sigterm(signum, frame) -> None:
    _watchdog(*TERMINATED)
    raise Terminated


def _stop_now(message: str, code: int) -> NoReturn:
    """Leave at once: `finally` blocks (lab faults undone, workers terminated) have run while the
    interrupt unwound; interpreter teardown could still wait on a process pool's manager thread,
    which once kept an interrupted run alive for more than 10 s."""
    print(message, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    from sim.montecarlo import RunError

    global _grace_s
    args = build_parser().parse_args(argv)
    _grace_s = GRACE_S.get(getattr(args, "command", None) or "", DEFAULT_GRACE_S)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        return args.func(args)
    except (SpecError, UsageError) as err:
        print(f"twin: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as err:
        print(f"twin: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _stop_now(*INTERRUPTED)
    except Terminated:
        _stop_now(*TERMINATED)
    except BrokenPipeError:  # output piped into `head`: not an error worth a traceback
        sys.stdout = None  # type: ignore[assignment]
        return 0


if __name__ == "__main__":
    sys.exit(main())
