"""The session store as the lab saw it: how long after a fault the survivors could not open the
failed node's clients' sessions, how they treated the CONNECTs that came meanwhile (held, refused at
once, dropped at the release), per run and per mode. Broker-neutral: from the attempts' timings and
`origin.sessions` (lab/SCHEMA.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.results import origin, owner_lost, sessions

ROLES_POLL_S = 0.2  # the lab reads the survivors' leaders this often (lab/runner.py RolesWatcher)
CLIENT_GAVE_UP = 0.9  # an attempt that lasted this share of the keepalive: the client's timeout
REFUSED_S = 0.5  # an attempt answered faster than this without a CONNACK was refused at once


def store_down_s(r: dict[str, Any]) -> tuple[float, list[float], int, int, int, int, int]:
    """When the survivors could open sessions again; how long they held the CONNECTs that came
    before and dropped them; how many of those attempts outlasted the client's own timeout; how
    many were refused at once, of how many that were not a client's first. The window is measured
    directly where the lab saw a survivor take over the session store (polled every ROLES_POLL_S)
    before any client opened a session; else bracketed by the clients: after the last attempt a
    survivor held and dropped started, before the first that succeeded (0 when no attempt was
    held: the store was back before anyone needed it)."""
    o = origin(r)
    after = o.get("lb_target_down_s") or 0.0  # earlier attempts may have gone to the failed node
    wait = r["meta"]["clients"]["keepalive_s"]
    attempts = [a[:3] for a in o.get("target_attempts", []) if a[0] >= after]
    held = [(a, d) for a, ok, d in attempts if not ok and REFUSED_S <= d < CLIENT_GAVE_UP * wait]
    elected = sessions(r)["released_s"]
    first_ok = min((a for a, ok, _ in attempts if ok), default=None)
    # A poll can come late (a slow /jsz): a session opened before the leader was "seen" means
    # the watcher was late, and the clients' bracket is the better measure.
    blocked = [a for a, ok, _ in attempts if not ok and first_ok is not None and a < first_ok]
    if elected is not None and (first_ok is None or elected - ROLES_POLL_S / 2 <= first_ok):
        down = elected - ROLES_POLL_S / 2
    elif not held and elected is not None and blocked:
        # seen late, but clients were kept out until the first CONNACK (EMQX: held past them)
        down = min(a + d for a, ok, d in attempts if ok)
    elif not held:
        down = 0.0
    else:
        lower = max(a for a, _ in held)
        down = (lower + min((a for a, ok, _ in attempts if ok and a > lower), default=lower)) / 2
    # a CONNECT dropped within a second of the release ended with it, not after a hold
    held = [(a, d) for a, d in held if abs(a + d - down) > 1.0]
    before = [(a, ok, d) for a, ok, d in attempts if a < down and not ok]
    outlasted = sum(1 for _, _, d in before if d >= CLIENT_GAVE_UP * wait)
    refused = sum(1 for _, _, d in before if d < REFUSED_S)
    later = len(before) - min(o["target_clients"], len(before))  # all but each client's first
    # held when the store came back: dropped then (ended within a second of it, the watcher's
    # reading lags), or kept to the client's timeout
    gave_up = CLIENT_GAVE_UP * wait
    dropped = sum(1 for a, _, d in before if REFUSED_S <= d < gave_up and abs(a + d - down) <= 1.0)
    kept = sum(1 for a, _, d in before if d >= gave_up and a + d > down)
    return down, [d for _, d in held], outlasted, refused, later, dropped, dropped + kept


def refusal_chains(r: dict[str, Any], down: float) -> tuple[int, int, int, int]:
    """Per client, before the release: after a held CONNECT, (held, refused) next; after a
    refused one, (held, refused) next. EMQX refuses in runs: 24 % after a held attempt, 76 % after
    a refused one (19 runs). Needs the client number of each attempt (lab runs from this date)."""
    o = origin(r)
    after = o.get("lb_target_down_s") or 0.0
    by_client: dict[int, list] = {}
    for a in o.get("target_attempts", []):
        if len(a) >= 4 and a[0] >= after and a[0] < down and not a[1]:
            by_client.setdefault(a[3], []).append(a[:4])
    counts = [0, 0, 0, 0]  # held->held, held->refused, refused->held, refused->refused
    for seq in by_client.values():
        kinds = ["r" if d < REFUSED_S else "h" for _, _, d, _ in sorted(seq)]
        for prev, now in zip(kinds, kinds[1:], strict=False):
            counts[(prev == "r") * 2 + (now == "r")] += 1
    return counts[0], counts[1], counts[2], counts[3]


def session_store(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How long the survivors could not open sessions, per run, grouped by whether the failed node
    led the session store (known from the brokers' roles; unknown elsewhere); how long a survivor
    held a CONNECT (None: longer than the clients waited, as EMQX's takeover of a silent node's
    session does); the share of a client's later CONNECTs it refused at once, overall and per
    run (a replay draws one run's share: some EMQX runs refused none, others a third)."""
    groups: dict[str, list[float]] = {"leader_lost": [], "leader_kept": [], "unknown": []}
    waits: list[float] = []
    outlasted = refused = later = dropped = across = 0
    per_run: list[float] = []  # a run's share refused after a held CONNECT (varies run to run)
    chains = np.zeros(4, dtype=int)
    for r in runs:
        if not origin(r):
            continue
        down, held, n_out, n_ref, n_later, n_drop, n_across = store_down_s(r)
        waits += held
        c = np.array(refusal_chains(r, down))
        chains += c
        if c[:2].sum():
            per_run.append(float(c[1] / c[:2].sum()))
        elif n_later and not c.sum():  # older runs without client numbers: the flat share
            per_run.append(n_ref / n_later)
        outlasted, refused, later = outlasted + n_out, refused + n_ref, later + n_later
        dropped, across = dropped + n_drop, across + n_across
        lost = owner_lost(r)
        groups["unknown" if lost is None else "leader_lost" if lost else "leader_kept"].append(down)
    wait: float | None = float(np.median(waits)) if waits else 0.0
    if outlasted > len(waits):  # most held CONNECTs outlasted the clients' patience
        wait = None
    return {"released_by": sessions(runs[0])["released_by"] if runs else None, "down_s": groups,
            "wait_s": wait, "wait_from": "this mode", "held_s": waits,
            "refuse_p": refused / later if later else 0.0,
            "refuse_p_per_run": per_run,
            "refuse_again_p": float(chains[3] / chains[2:].sum()) if chains[2:].sum() else None,
            "refusal_chains": chains.tolist(),
            "release_drop_p": dropped / across if across else 0.0,
            "attempts": {"outlasted_client": outlasted, "refused": refused, "later": later,
                         "held_across_release": across, "dropped_at_release": dropped}}
