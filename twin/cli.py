"""`twin`: the one place that wires sim and lab together.

Every user mistake ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import threading
from typing import NoReturn

from sim.spec import Spec, SpecError, load_spec
from twin.usage import EXIT_USAGE, UsageError
from twin.usage import Parser as _Parser
from twin.usage import positive_float as _positive_float
from twin.usage import positive_int as _positive_int


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
    from twin import calibrate_cli, capacity_cli, lab_cli, review_cli, simulate_cli

    review_cli.register(sub)
    capacity_cli.register(sub)
    simulate_cli.register(sub, run_opts)
    lab_cli.register(sub)
    calibrate_cli.register(sub)

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
