"""`twin calibrate`, `twin validate`: lab results into calibration files, and lab against twin."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from twin.usage import UsageError, check_writable
from twin.usage import write_output as _write


def cmd_calibrate(args: argparse.Namespace) -> int:
    from calibration.fit import calibrate
    from calibration.results import CalibrationError, load_results
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

    from calibration.results import CalibrationError, load_results
    from calibration.validate import validate

    if args.json:  # before the replays (tens of seconds), not after them
        check_writable(Path(args.json))
    if args.plots:
        check_writable(Path(args.plots) / "validation_cdf.png")
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
        from calibration.plot import validation_cdfs

        print(f"wrote {validation_cdfs(report, Path(args.plots) / 'validation_cdf.png')}")
    return 0


def _validation_table(report: dict, calibration: str, wide: bool):
    """Pooled per mode and per run, at 80 columns; `wide` adds p99, sessions, loss, duplicates
    and collateral outages."""
    from rich.table import Table

    from calibration.report import censored_cell, ks_spread, pct_cell
    from calibration.validate import meets_targets

    table = Table(title=f"lab vs twin: outages of the failed node's clients, s ({Path(calibration).name})")
    cols = ["run", "mode", "p50 lab/twin", "p95 lab/twin", "KS", "bar"]
    out_at_end = any(r.get("censored") for r in [*report["runs"], *report["modes"].values()])
    if out_at_end:  # outages still open when the run ended: compared censored (Kaplan-Meier)
        cols[4:4] = ["still out at the end lab/twin"]
    if wide:
        cols[4:4] = ["n", "p99 lab/twin", "session present", "ack lost", "dup", "collateral"]
    for col in cols:
        table.add_column(col, no_wrap=not wide)

    def pct(r, k):
        return pct_cell(r, k, sep="/", pc="%")

    def row(name, mode, r, met, extra):
        cells = [name, mode, pct(r, "p50"), pct(r, "p95"), f"{r['ks_distance']:.2f}", met]
        if out_at_end:
            cells[4:4] = [censored_cell(r)]
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


def register(sub) -> None:
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
