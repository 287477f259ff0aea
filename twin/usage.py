"""What every command shares: the usage error (one line, exit 2), the parser that raises it, the
argument types, the run overrides and checked output paths. No command module imports another."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from sim.spec import Spec, check_size

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake on the command line or in an input file, already phrased for the user."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _whole(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} must be >= {low}")
    return value


def positive_int(text: str) -> int:
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    return _whole(text, 0)


def positive_ints(text: str) -> list[int]:
    """`100000,1e6`: whole numbers >= 1, separated by commas."""
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers separated by commas") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers >= 1")
    return values


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a finite number > 0")
    return value


def with_overrides(spec: Spec, args: argparse.Namespace) -> Spec:
    update = {k: v for k, v in (("years", getattr(args, "years", None)),
                                ("replications", getattr(args, "replications", None)),
                                ("seed", getattr(args, "seed", None)),
                                ("start", getattr(args, "start", None))) if v is not None}
    if not update:
        return spec
    if update.get("replications", 2) < 2:
        raise UsageError("--replications: must be >= 2 for a confidence interval")
    from pydantic import ValidationError

    from sim.spec import Simulation

    try:
        simulation = Simulation.model_validate({**spec.simulation.model_dump(), **update})
    except ValidationError as err:
        e = err.errors(include_url=False)[0]
        raise UsageError(f"--{e['loc'][0]} = {e['input']!r}: {e['msg'].lower()}") from None
    spec = spec.model_copy(update={"simulation": simulation})
    check_size(spec, args.spec)
    return spec


def check_writable(path: Path) -> None:
    """The file can be written (tried: a folder's permission bits can say yes where the file
    system says no, as in /proc): created if missing and removed again, never emptied."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{path}: cannot write ({err.strerror})") from None
    if path.is_dir():
        raise UsageError(f"{path}: cannot write (a folder, not a file)")
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as err:
        raise UsageError(f"{path}: cannot write ({err.strerror})") from None
    if not existed:
        path.unlink()


def write_output(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"{path}: cannot write ({err.strerror})") from None
    print(f"wrote {path}")


def progress_bar(total: int, what: str):
    """A bar over `total` designs on a terminal (none when stderr is not one), and its tick."""
    import sys

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(f"[bold]{what}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} designs"), TimeElapsedColumn(),
                   transient=True, disable=not sys.stderr.isatty())
    task = bar.add_task(what, total=total)
    return bar, (lambda _result: bar.advance(task))
