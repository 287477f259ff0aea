"""`twin lab up|down|status|run|load`: the lab of real brokers behind a real LB."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from twin.usage import Parser as _Parser
from twin.usage import UsageError, check_writable
from twin.usage import positive_int as _positive_int


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
    check_writable(out / f"{scenario.name}-0.json")  # before the lab comes up
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


def register(sub) -> None:
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
