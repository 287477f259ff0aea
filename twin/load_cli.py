"""`twin lab load SCENARIO`: a load scenario on the lab, with a progress bar; and the load side of
`twin calibrate` / `twin validate` (load summaries in, load costs out)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from twin.usage import UsageError


def add_parser(lab_sub: Any, broker_option: Any) -> None:
    lp = lab_sub.add_parser("load", help="a load scenario (lab/scenarios/load/*.toml): costs per "
                            "connection, subscription and message on each broker node")
    lp.add_argument("scenario")
    lp.add_argument("--repeat", type=int, metavar="N")
    lp.add_argument("--out", default="out/load", metavar="DIR")
    lp.add_argument("--plot", metavar="PNG", help="each node's connections and CPU over time "
                    "(repeat k: PNG with -k before the suffix)")
    broker_option(lp)
    lp.set_defaults(func=cmd_load)


def cmd_load(args: argparse.Namespace) -> int:
    from lab.cluster import LabConfig, LabError, last_broker
    from lab.load.runner import run_load
    from lab.load.scenario import load_load_scenario

    broker = args.broker or last_broker() or "standin"
    try:
        scenario = load_load_scenario(args.scenario)
        if args.repeat is not None and not 1 <= args.repeat <= 20:
            raise UsageError(f"--repeat = {args.repeat}: must be 1..20")
        LabConfig(broker=broker, image=args.image)  # refuses --image on the stand-in
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        if args.plot and Path(args.plot).suffix.lower() != ".png":
            raise UsageError(f"--plot = {args.plot!r}: must end in .png")
    except (LabError, ValueError) as err:
        raise UsageError(str(err)) from None
    except OSError as err:
        raise UsageError(f"--out {args.out}: {err.strerror}") from None
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task(scenario.name, total=1.0)
        try:
            summaries = run_load(scenario, out, broker, args.repeat, args.image,
                                 progress=lambda m, f: bar.update(task, description=m, completed=f))
        except LabError as err:
            raise UsageError(str(err)) from None
    for k, s in enumerate(summaries):
        print_load_summary(s, f"{scenario.name} #{k}", console)
        if args.plot:
            from lab.load.plot import plot_load_run

            png = Path(args.plot)
            if len(summaries) > 1:
                png = png.with_name(f"{png.stem}-{k}{png.suffix}")
            print(f"plot: {plot_load_run(out / f'{scenario.name}-{k}', s, png)}")
    print(f"results in {out}")
    return 0


def print_load_summary(s: dict[str, Any], title: str, console: Console | None = None) -> None:
    console = console or Console()
    g = s["generator"]
    table = Table(title=f"{title}: {'valid' if s['valid'] else 'INVALID'}; sent {g['sent']}, "
                  f"received {g['recv']}, connects {g['connects']}, overrun {g['overrun']}; CONNACK "
                  f"p50/p99 {_ms(g['connack_latency_s'], 'p50')}/{_ms(g['connack_latency_s'], 'p99')}"
                  f" ms; delivery p50/p99 {_ms(g['delivery_latency_s'], 'p50')}/"
                  f"{_ms(g['delivery_latency_s'], 'p99')} ms", box=None)
    for col in ("step", "window", "node", "connections", "subscriptions", "in/s", "out/s",
                "connects/s", "CPU cores", "memory MiB"):
        table.add_column(col, justify="right")
    for p in s["points"]:
        table.add_row(str(p["step"]), p["window"], p["node"], _n(p.get("connections")),
                      _n(p.get("subscriptions")), _n(p.get("msgs_in_per_s")),
                      _n(p.get("msgs_out_per_s")), _n(p.get("connects_per_s")),
                      f"{p['cpu_cores']:.3f}", f"{(p['anon_bytes'] or 0) / 2**20:.1f}")
    console.print(table)
    for why in s["invalid"]:
        console.print(f"not a valid measurement: {why}")
    if s.get("alarms"):
        console.print(f"alarms raised: {', '.join(s['alarms'])}")


def _ms(p: dict[str, Any], k: str) -> str:
    return "-" if p.get(k) is None else f"{p[k] * 1000:.1f}"


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def is_load_summary(data: dict[str, Any]) -> bool:
    return data.get("meta", {}).get("kind") == "load"


def load_summaries(paths: list[str]) -> list[dict[str, Any]]:
    """Load-lab summaries among `paths` (files or folders); invalid runs are left out, said."""
    from calibration.results import CalibrationError, load_results

    try:
        out = [r for r in load_results(paths) if is_load_summary(r)]
    except CalibrationError as err:
        raise UsageError(str(err)) from None
    if not out:
        raise UsageError(f"{', '.join(paths)}: no valid load summary (meta.kind = 'load')")
    return out


def any_load_summary(paths: list[str]) -> bool:
    """Whether the first summary among `paths` is a load run's (then calibrate fits costs)."""
    for p in map(Path, paths):
        files = sorted(p.glob("*.json")) if p.is_dir() else [p] if p.exists() else []
        for f in files:
            try:
                return is_load_summary(json.loads(f.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                return False
    return False


def calibrate_load(paths: list[str], out: str, name: str | None, write: Any) -> int:
    from calibration.load_costs import LoadCalibrationError, fit_load_costs, markdown

    try:
        costs = fit_load_costs(load_summaries(paths), name or Path(out).stem)
    except LoadCalibrationError as err:
        raise UsageError(str(err)) from None
    write(Path(out), json.dumps(costs, indent=2) + "\n")
    print(markdown(costs))
    if costs["provenance"]["standin"]:
        print("provenance: stand-in broker (NATS), not EMQX")
    return 0


def validate_load_costs(paths: list[str], costs: dict[str, Any], name: str) -> int:
    from calibration.load_costs import markdown, validate_load

    report = validate_load(load_summaries(paths), costs)
    print(markdown(costs, report))
    return 0
