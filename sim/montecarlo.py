"""Independent replications on any `concurrent.futures.Executor`, reproducible from one seed.

Replication i always uses `SeedSequence(seed, spawn_key=(i,))`, so results do not depend on the
number of workers or on which executor (process pool, dask.distributed) ran it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sim.longrun import NodeEvent, ReplicationResult, run_replication
from sim.spec import Spec

Worker = Callable[[Spec, int], ReplicationResult]


class RunError(RuntimeError):
    """A replication could not be run (its worker died); one line."""


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C and SIGTERM to the parent, which stops them: a terminal's Ctrl-C
    reaches the whole process group, and workers dying on their own give tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the workers now (shutdown alone waits for running work)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=2)


def replicate(spec: Spec, index: int, pool_dir: str | None = None) -> ReplicationResult:
    """One replication: the long-run model, then the client transients of its node events
    (their pools shared through `pool_dir` with the run's other workers). Where a study shares
    long-run histories between designs (sim/history.py), a recorded one is replayed instead."""
    import sim.pools as pools
    from sim import history
    from sim.clientimpact import ClientImpact, attach_client_impact

    pools.RUN_POOL_DIR = pool_dir

    seq = np.random.SeedSequence(spec.simulation.seed, spawn_key=(index,))
    impact = ClientImpact(spec, np.random.default_rng(np.random.SeedSequence(
        spec.simulation.seed, spawn_key=(index, 1)))) if spec.clients.count else None
    shared = history.path_for(spec, index)
    recorded = history.load(shared) if shared is not None else None
    if recorded is not None:
        result, events = recorded
        if impact is None or impact.replay(events):
            attach_client_impact(spec, result, impact)
            return result
        # a draw here could cascade: this design's own long run (the replay drew nothing)
    keys: list[tuple[str, int, int]] = []

    def record(event: NodeEvent) -> bool:  # the first design of a study with this long run
        keys.append((event.cause, event.region, event.nodes_up_before))
        return impact(event) if impact is not None else False

    recording = shared is not None and recorded is None
    result = run_replication(spec, seq, on_node_event=record if recording else impact)
    if recording and (impact is None or not impact.cascades):  # else it is this design's own
        history.save(shared, result, keys)
    attach_client_impact(spec, result, impact)
    return result


def replicate_longrun(spec: Spec, index: int) -> ReplicationResult:
    """One replication of the long-run model alone (no client transients)."""
    seq = np.random.SeedSequence(spec.simulation.seed, spawn_key=(index,))
    return run_replication(spec, seq)


@dataclass
class RunOutcome:
    results: list[ReplicationResult]
    stopped_by: str  # "replications", "precision", "max_replications"


def relative_half_width(results: list[ReplicationResult]) -> float:
    """95 % CI half-width of mean unavailability relative to the mean (inf if it is 0)."""
    from sim.metrics import mean_ci

    u = np.array([r.downtime_s_per_year.sum() / r.horizon_s for r in results])
    mean, (lo, hi) = mean_ci(u)
    return float("inf") if mean <= 0 else (hi - lo) / 2 / mean


def run(
    spec: Spec,
    replications: int | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    precision: float | None = None,
    max_replications: int = 2000,
    progress: bool | None = None,
    worker: Worker = replicate,
) -> RunOutcome:
    n = replications or spec.simulation.replications
    if progress is None:
        progress = sys.stderr.isatty()
    own = None
    if executor is None and (workers or os.cpu_count() or 1) > 1:
        own = executor = ProcessPoolExecutor(max_workers=workers or os.cpu_count(),
                                             initializer=_ignore_interrupts)
    results: list[ReplicationResult] = []
    stopped_by = "replications"
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total} {task.fields[unit]}"),
                   TimeElapsedColumn(), transient=True, disable=not progress)
    pool_dir = None
    try:
        with bar:
            if executor is not None and worker is replicate and spec.clients.count:
                # Workers share the transient pools instead of each building all of them (in
                # TWIN_POOL_CACHE where studies set it, else in a folder of this run's own).
                if not os.environ.get("TWIN_POOL_CACHE"):
                    pool_dir = tempfile.mkdtemp(prefix="twin-pools-")
                _prebuild(executor, spec, pool_dir, bar)
                worker = partial(replicate, pool_dir=pool_dir)
            task = bar.add_task(spec.meta.name, total=n, unit="replications")
            batch = range(0, n)
            while True:
                results.extend(_map(executor, worker, spec, batch, lambda: bar.advance(task)))
                if precision is None:
                    break
                if relative_half_width(results) <= precision:
                    stopped_by = "precision"
                    break
                if not any(r.downtime_s_per_year.sum() for r in results):
                    # nothing failed: more of the same cannot give a relative precision; the
                    # verdict says how many years would show the target (metrics.judge)
                    stopped_by = "no_outages"
                    break
                if len(results) >= max_replications:
                    stopped_by = "max_replications"
                    break
                more = min(len(results), max_replications - len(results))
                batch = range(len(results), len(results) + more)
                bar.update(task, total=len(results) + more)
    except BaseException:  # Ctrl-C, SIGTERM, a dead worker: no replication may outlive the run
        if own is not None:
            stop_pool(own)
            own = None
        raise
    finally:
        if own is not None:
            own.shutdown()
        if pool_dir is not None:
            shutil.rmtree(pool_dir, ignore_errors=True)
    return RunOutcome(results, stopped_by)


def _prebuild(executor: Executor, spec: Spec, pool_dir: str | None, bar: Progress) -> None:
    """The pools nearly every replication draws from, one per worker task, before the
    replications start (pools come from seeds of their own: who builds one does not matter)."""
    from sim.pools import build_pool, common_pool_classes

    classes = common_pool_classes(spec)
    task = bar.add_task("transient pools", total=len(classes), unit="pools")
    futures = [executor.submit(build_pool, spec, *cls, pool_dir) for cls in classes]
    try:
        for f in futures:
            try:
                f.result()
            except BrokenProcessPool:
                raise RunError("a transient pool's worker process died (killed, or out of "
                               "memory)") from None
            bar.advance(task)
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    bar.remove_task(task)


def _map(executor, worker, spec, indices, tick) -> list[ReplicationResult]:
    if executor is None:
        out = []
        for i in indices:
            out.append(worker(spec, i))
            tick()
        return out
    futures = [executor.submit(worker, spec, i) for i in indices]
    out = []
    try:
        for i, f in zip(indices, futures, strict=True):  # in index order: never completion order
            try:
                out.append(f.result())
            except BrokenProcessPool:
                raise RunError(f"replication {i}: its worker process died (killed, or out of "
                               "memory)") from None
            tick()
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return out
