"""The lab's failover summaries as calibration reads them (schema: lab/SCHEMA.md, versions 1 and 2).

What a run says about its failed node's clients, in broker-neutral terms: the outages the model
replays, whether the failed node owned their sessions, when the LB took it out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lab.summary_schema import NO_SESSION_FACTS, READABLE, session_facts

# lab fault -> (the transient model's failure mode, does the failed host's address vanish)
FAULT_MODE: dict[str, tuple[str, bool | None]] = {
    "kill": ("crash", True),  # the process dies (connections reset), then its address is gone
    "stop": ("stop", True),
    "pause": ("hang", None),
    "partition": ("partition", None),
}
NOT_REPLAYED = {"rolling_restart": "several events in one run", "lb_loss": "not a node fault",
                "region_loss": "not a node fault", "wan": "not a node fault"}
LB_POLL_S = 0.2  # the lab reads HAProxy's view this often (lab/runner.py LBWatcher)


class CalibrationError(ValueError):
    """Input that cannot be calibrated from; one line."""


def load_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Lab summary files (or folders of them), in a stable order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.glob("*.json"))
        elif p.exists():
            files.append(p)
        else:
            raise CalibrationError(f"{p}: no such file or folder")
    results = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise CalibrationError(f"{f}: not JSON ({err.msg})") from None
        if not isinstance(data, dict) or data.get("meta", {}).get("schema_version") not in READABLE:
            raise CalibrationError(f"{f}: not a lab summary (meta.schema_version "
                                   f"{' or '.join(map(str, READABLE))}, lab/SCHEMA.md)")
        data["meta"]["source_file"] = str(f)
        if data.get("valid") is False:  # the checker found the run measured something else
            print(f"{f}: skipped, not a valid run: {'; '.join(data.get('invalid', []))[:300]}",
                  file=sys.stderr)
            continue
        results.append(data)
    if not results:
        raise CalibrationError("no lab summary files given")
    return results


def origin(r: dict[str, Any]) -> dict[str, Any] | None:
    """Where the run's clients were when the fault struck; None where the lab could not ask."""
    o = r.get("origin")
    return o if o and o.get("placement_known") else None


def target_outages(r: dict[str, Any]) -> np.ndarray:
    """The outages the model replays: the failed node's clients when the lab knew who they were."""
    o = origin(r)
    return np.asarray(o["target_client_outages"] if o else r["client_outages"], float)


def mode_of(r: dict[str, Any]) -> str | None:
    fm = FAULT_MODE.get(r["meta"]["fault"])
    return fm[0] if fm else None


def sessions(r: dict[str, Any]) -> dict[str, Any]:
    """Did the failed node own its clients' sessions, when could a survivor open them, and what
    released them (`election` or `failure_detector`); None each where the lab did not see."""
    return session_facts(r) if origin(r) else dict(NO_SESSION_FACTS)


def owner_lost(r: dict[str, Any]) -> bool | None:
    """Whether the failed node owned its clients' sessions (led the session store)."""
    return sessions(r)["owner_failed"]


def lb_down_at(r: dict[str, Any]) -> float | None:
    """When the LB took the failed node out in this run. HAProxy is polled every LB_POLL_S, so it
    happened during the poll before; the clients it reset (on_down = reset) date it exactly."""
    o = origin(r)
    seen = o.get("lb_target_down_s") if o else None
    if seen is None:
        return None
    reset = [d for d in o["detection_s"] if seen - LB_POLL_S <= d <= seen]
    return float(np.median(reset)) if reset else seen - LB_POLL_S / 2


def target_censored(r: dict[str, Any]) -> np.ndarray:
    """The failed node's clients still out at the run's end: disconnect to the end (right-censored
    outages; none in a version 1 summary, which did not record them)."""
    o = origin(r)
    return np.asarray((o or {}).get("target_censored_s") or [], float)


def measured_s(r: dict[str, Any]) -> float | None:
    """Seconds from the fault to the run's end: what the lab could see. Version 1 summaries: from
    the scenario's timings (the runner's sleeps; its own overhead, ~0.1 s, uncounted)."""
    m = (r.get("fault") or {}).get("measured_s")
    if m is not None:
        return float(m)
    t = r["meta"].get("timings")
    if not t:
        return None
    during = r["meta"].get("undo", "during_run") == "during_run"
    return float(t["fault_s"] + (t["recover_s"] if during else 0.0) + t["drain_s"])


def initial_counts(r: dict[str, Any]) -> tuple[int, ...] | None:
    """Clients per node when the fault struck: the survivors in name order (absent from the
    placement: none), then the failed node (the replay's last); None where the summary does not
    say."""
    o = origin(r)
    counts = (o or {}).get("placement_counts")
    if counts is None:
        return None
    target = str(r["meta"].get("target"))
    others = [counts[n] for n in sorted(counts) if n != target]
    nodes = int(r["meta"].get("nodes", 3))
    return (*others, *[0] * (nodes - 1 - len(others)), int(counts.get(target, 0)))


def first_retry_s(r: dict[str, Any]) -> float | None:
    """Where the run's clients' back-off ladder started: `reconnect_min_s` doubled as often as
    their first attempts say (median disconnect-to-first-attempt). The lab's fleet schedules a
    loss its own keepalive noticed twice (first retry after 2 x min); one the broker or LB reset
    once. None where the run does not say."""
    o = origin(r)
    delays = (o or {}).get("first_attempt_delay_s") or []
    if not delays:
        return None
    low = float(r["meta"]["clients"]["reconnect_min_s"])
    doublings = max(0, int(np.round(np.log2(max(float(np.median(delays)), low) / low))))
    return low * 2.0 ** doublings


def client_overhead_s(r: dict[str, Any]) -> list[float]:
    """How late each client's first attempt came after its back-off delay (the fleet's own
    scheduling lateness, a few ms; never negative)."""
    o = origin(r)
    first_try = first_retry_s(r) or r["meta"]["clients"]["reconnect_min_s"]
    return [max(x - first_try, 0.0) for x in (o or {}).get("first_attempt_delay_s", [])]
