"""What a recorded history means (in the spirit of Jepsen's total-queue checker).

A pure function of the records in lab/history.py; no Docker needed to test it. Its output is the
summary schema that calibration reads (lab/SCHEMA.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np


def _pcts(x: list[float]) -> dict[str, float | None]:
    if not x:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(max(x)),
            "count": len(x)}


def check(records: list[dict[str, Any]]) -> dict[str, Any]:
    sent: dict[tuple[str, int], float] = {}
    acked: set[tuple[str, int]] = set()
    received: dict[tuple[str, int], int] = defaultdict(int)
    latencies: list[float] = []
    reordered = 0
    last_seq: dict[tuple[str, str], int] = {}
    events_by_client: dict[str, list[tuple[float, str, bool]]] = defaultdict(list)
    fault_start = fault_end = None
    target = ""
    placement: dict[str, str] = {}
    roles: dict[str, str] = {}
    attempts: dict[str, list[float]] = defaultdict(list)
    lb_events: list[tuple[float, str, str]] = []
    role_changes: list[tuple[float, dict[str, str]]] = []
    stop_t = next((r["t"] for r in records if r["ev"] == "stop"), float("inf"))
    refused = 0
    refusals: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for r in records:
        ev = r["ev"]
        if ev in ("connect", "disconnect") and r["t"] >= stop_t:
            continue  # the fleet's own shutdown
        if ev == "connect" and r.get("rc", 0):
            refused += 1  # a CONNACK that refuses (EMQX: 0x88 server unavailable) ends an attempt,
            refusals[r["c"]].append((r["t"], int(r["rc"])))  # not an outage: the disconnect that
            continue  # follows marks the attempt failed
        if ev == "send":
            sent[(r["p"], r["s"])] = r["t"]
        elif ev == "ack":
            acked.add((r["p"], r["s"]))
        elif ev == "recv":
            key = (r["p"], r["s"])
            received[key] += 1
            if received[key] == 1:
                latencies.append(r["t"] - r["ts"])
                stream = (r["c"], r["p"])
                if stream in last_seq and r["s"] < last_seq[stream]:
                    reordered += 1
                last_seq[stream] = max(last_seq.get(stream, -1), r["s"])
        elif ev in ("connect", "disconnect"):
            events_by_client[r["c"]].append((r["t"], ev, bool(r.get("sp", False))))
        elif ev == "attempt":
            attempts[r["c"]].append(r["t"])
        elif ev == "lb":
            lb_events.append((r["t"], r["node"], r["status"]))
        elif ev == "roles":
            role_changes.append((r["t"], r["roles"]))
        elif ev == "fault":
            if r["phase"] == "start" and fault_start is None:
                fault_start = r["t"]
                target = r.get("target", "")
                placement = r.get("placement") or {}
                roles = r.get("roles") or {}
            elif r["phase"] == "end":
                fault_end = r["t"]

    outages: list[float] = []
    never_back: list[str] = []
    censored: list[float] = []  # outages still open at the run's end: disconnect to the end
    reconnects = present = 0
    for client, evs in events_by_client.items():
        evs.sort()
        down_since = None
        seen_connect = False
        for t, ev, sp in evs:
            if ev == "disconnect" and seen_connect and down_since is None:
                down_since = t
            elif ev == "connect":
                if seen_connect and down_since is not None:
                    outages.append(t - down_since)
                    if client.split("-")[-1].startswith("s"):  # persistent subscribers
                        reconnects += 1
                        present += sp
                down_since = None
                seen_connect = True
        if down_since is not None:
            never_back.append(client)
            if stop_t < float("inf"):
                censored.append(stop_t - down_since)

    silent = _silent_streams(sent, acked, received, fault_start)
    acked_lost = sorted(k for k in acked if received.get(k, 0) == 0)
    unacked_lost = [k for k in sent if k not in acked and received.get(k, 0) == 0]
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    return {
        "messages": {
            "sent": len(sent), "acknowledged": len(acked),
            "received_unique": sum(1 for n in received.values() if n > 0),
            "acknowledged_lost": len(acked_lost), "lost_unacknowledged": len(unacked_lost),
            "duplicated": duplicates, "reordered": reordered,
            "acknowledged_lost_examples": [list(k) for k in acked_lost[:10]],
        },
        "delivery_latency_s": _pcts(latencies),
        "client_outage_s": _pcts(outages),
        "client_outages": [float(x) for x in outages],
        "client_outages_censored": [float(x) for x in censored],
        "clients": {"seen": len(events_by_client), "disconnects": len(outages) + len(never_back),
                    "not_reconnected": sorted(never_back), "refused_connacks": refused},
        "sessions": {"reconnects": reconnects, "present": present,
                     "present_ratio": present / reconnects if reconnects else None},
        "fault": {"start": fault_start, "end": fault_end,
                  # fault start to the run's end: where an outage still open is censored
                  "measured_s": stop_t - fault_start if fault_start is not None
                  and stop_t < float("inf") else None},
        "valid": not silent,
        "invalid": [f"{p}: none of its {n} messages acknowledged more than {SILENT_MARGIN_S:.0f} s "
                    "before the fault arrived: its subscription never worked, so the run "
                    "measured the set-up, not the failover" for p, n in silent],
        **_by_origin(events_by_client, attempts, lb_events, fault_start, target, placement, roles,
                     role_changes, refusals, stop_t),
    }


SILENT_MARGIN_S = 1.0  # messages this close to the fault may still be in flight


def _silent_streams(sent: dict[tuple[str, int], float], acked: set[tuple[str, int]],
                    received: dict[tuple[str, int], int], fault_start: float | None
                    ) -> list[tuple[str, int]]:
    """Publishers with at least 3 messages acknowledged well before the fault of which none
    arrived: (publisher, count)."""
    if fault_start is None:
        return []
    before: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for k, t in sent.items():
        if k in acked and t < fault_start - SILENT_MARGIN_S:
            before[k[0]].append(k)
    return sorted((p, len(ks)) for p, ks in before.items()
                  if len(ks) >= 3 and not any(received.get(k, 0) for k in ks))


def _by_origin(events_by_client, attempts, lb_events, fault_start, target, placement, roles,
               role_changes=(), refusals=None, stop_t=float("inf")) -> dict[str, Any]:
    """What the model replays: the clients that were on the failed node (from the brokers' own
    placement at the fault), each one's first outage measured from its disconnect; everything
    else (clients of other nodes, second outages) is collateral. Plus attempt timings and the
    LB's view, which calibration fits."""
    if fault_start is None:
        return {"origin": None}
    first: list[float] = []
    detection: list[float] = []
    collateral: list[float] = []
    connack: list[float] = []
    failed_attempt: list[float] = []
    first_attempt: list[float] = []
    target_attempts: list[list] = []
    censored_first: list[float] = []  # failed-node clients not back: disconnect to the run's end
    censored_other: list[float] = []
    on_target_ids = {c: k for k, c in enumerate(sorted(c for c in events_by_client
                                                        if placement.get(c) == target))}
    for client, evs in events_by_client.items():
        on_target = placement.get(client) == target
        tries = sorted(t for t in attempts.get(client, []) if t >= fault_start)
        if on_target:  # each attempt of its first outage: [start after the fault, CONNACK?, s,
            # which of the failed node's clients, the CONNACK's code (None: no CONNACK came)]
            back = next((t for t, ev, _sp in evs if ev == "connect" and t >= fault_start), None)
            for a in tries:
                end = next(((t, ev) for t, ev, _sp in evs if t >= a), None)
                if end is not None and (back is None or a <= back):
                    code = 0 if end[1] == "connect" else next(
                        (rc for t, rc in (refusals or {}).get(client, []) if a <= t <= end[0]), None)
                    target_attempts.append([a - fault_start, end[1] == "connect", end[0] - a,
                                            on_target_ids[client], code])
        down_since = None
        counted = False
        for t, ev, _sp in evs:
            if t < fault_start:
                continue
            last_try = max((a for a in tries if a <= t), default=None)
            replayed = on_target and not counted  # timings only from the outages replayed
            if ev == "disconnect":
                if down_since is None:
                    down_since = t
                    nxt = next((a for a in tries if a >= t), None)
                    if replayed:
                        detection.append(t - fault_start)
                        if nxt is not None:
                            first_attempt.append(nxt - t)
                elif replayed and last_try is not None and last_try >= down_since:
                    failed_attempt.append(t - last_try)
            elif ev == "connect" and down_since is not None:
                if replayed and last_try is not None and last_try >= down_since:
                    connack.append(t - last_try)
                (first if on_target and not counted else collateral).append(t - down_since)
                counted = counted or on_target
                down_since = None
        if down_since is not None and stop_t < float("inf"):  # still out at the run's end
            (censored_first if on_target and not counted else censored_other).append(
                stop_t - down_since)
    lb_target = [(t - fault_start, st) for t, node, st in lb_events if node == target
                 and t >= fault_start]
    # roles the failed node led: when a survivor said it had a new leader (None: not seen)
    elected = {role: next((t - fault_start for t, now in role_changes if t >= fault_start
                           and now.get(role) not in ("", None, target)), None)
               for role, leader in roles.items() if leader == target} if role_changes else {}
    return {"origin": {
        "placement_known": bool(placement),
        "roles": roles,  # who led what when the fault struck (stand-in: JetStream leaders)
        "roles_elected_s": elected,
        "target_clients": sum(1 for node in placement.values() if node == target),
        "target_client_outages": [float(x) for x in first],
        "target_censored_s": [float(x) for x in censored_first],
        "collateral_censored_s": [float(x) for x in censored_other],
        "placement_counts": dict(Counter(placement.values())),
        "collateral_outages": [float(x) for x in collateral],
        "detection_s": [float(x) for x in detection],
        "connack_latency_s": [float(x) for x in connack],
        "failed_attempt_s": [float(x) for x in failed_attempt],
        "first_attempt_delay_s": [float(x) for x in first_attempt],
        "target_attempts": target_attempts,
        "lb_target_down_s": next((t for t, st in lb_target if st == "DOWN"), None),
        "lb_target_up_s": next((t for t, st in lb_target if st == "UP"), None),
        "lb_others_down": sum(1 for t, node, st in lb_events if node != target and st == "DOWN"
                              and t >= fault_start),
    }}
