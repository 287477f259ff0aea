"""A lab run replayed in the transient model: the same fault, clients, keepalive, back-off and LB
settings, with the calibrated broker timings drawn per replication."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from calibration.results import FAULT_MODE, sessions
from calibration.session_store import refusal_chains, store_down_s
from sim.calibration_file import draw, refuse_again_p, refuse_p, store_wait_s
from sim.transient import Scenario, simulate

REPLAYS = 200  # transient replications per lab run
LAB_LB_SERVER_TIMEOUT_S = 90.0  # lab/lbconfig.py client_timeout_s, for summaries that omit it
LAB_LB_CONNECT_HOLD_S = 20.0  # lab/lbconfig.py `timeout connect 5s` x (HAProxy's default retries 3 + 1)


def replay_scenario(meta: dict[str, Any]) -> Scenario:
    """The lab run as a transient scenario: its fault, clients, back-off and LB settings (the
    calibrated timings are set per replication by `replay`)."""
    mode, unreachable = FAULT_MODE[meta["fault"]]
    c, lb, t = meta["clients"], meta["lb"], meta["timings"]
    undo_during = meta.get("undo", "during_run") == "during_run"
    return Scenario(
        # the failed node last: HAProxy shares ties among equal servers, the model gives them to
        # the lowest index, so the dead node is not the one every tie favours
        nodes=int(meta.get("nodes", 3)), failed=(int(meta.get("nodes", 3)) - 1,), mode=mode,
        clients=c["subscribers"] + c["publishers"], unreachable=unreachable,
        return_after_s=t["fault_s"] if undo_during else float("inf"),
        algorithm=lb["algorithm"], probe_protocol=lb["probe"], probe_interval_s=lb["interval_s"],
        probe_threshold=lb["fall"], on_down=lb["on_down"],
        # HAProxy holds a connection the client left on a hung server until `timeout server`
        lb_holds_closed_s=float(lb.get("client_timeout_s", LAB_LB_SERVER_TIMEOUT_S)),
        lb_connect_hold_s=LAB_LB_CONNECT_HOLD_S,
        # HAProxy without `timeout check` (lab/lbconfig.py) gives a check `inter` to be answered
        probe_timeout_s=lb["interval_s"],
        keepalive_s=c["keepalive_s"],
        connect_timeout_s=c["keepalive_s"],  # the fleet waits one keepalive for CONNACK (paho)
        # ... checked at each client's own timer tick (older runs: one shared tick, see replay)
        timer_tick_s=(meta.get("client_timer_tick_s") or 0.0) if _own_phase(meta) else 0.0,
        initial_s=c["reconnect_min_s"], max_s=c["reconnect_max_s"], multiplier=2.0,
        sessions=meta["sessions"], qos=c["qos"], publish_per_s=c["publish_per_s"],
        subscriber_fraction=c["subscribers"] / (c["subscribers"] + c["publishers"]),
    )


def _own_phase(meta: dict[str, Any]) -> bool:
    return meta.get("client_timer_phase") == "per_client"


def _client_timeout(meta: dict[str, Any], mech: dict[str, Any], rng: np.random.Generator
                    ) -> float:
    """How long this run's clients wait for a CONNACK: one keepalive (each client's own tick is
    drawn by the model); in older runs checked on one tick shared by all clients of the run;
    else as measured."""
    if _own_phase(meta):
        return meta["clients"]["keepalive_s"]
    tick = meta.get("client_timer_tick_s")
    if tick is not None:
        return meta["clients"]["keepalive_s"] + float(rng.uniform(0, tick))
    timer = mech.get("connack_wait_s")
    return float(draw(timer, 1, rng)[0]) if timer else meta["clients"]["keepalive_s"]


def _windows_for(down_s: dict[str, list[float]], lost_leader: bool | None) -> list[float]:
    """The calibration runs' session-store windows that apply: those with the same leader
    situation when it is known and was calibrated. A store whose leader survived has nothing to
    wait for (0) when no calibration run showed otherwise; else all windows seen."""
    if lost_leader is not None:
        same = down_s.get("leader_lost" if lost_leader else "leader_kept") or []
        if same:
            return same
        if not lost_leader:
            return [0.0]
    return [w for ws in down_s.values() for w in ws]


def released_at(r: dict[str, Any]) -> float | None:
    """Where the failed node's sessions stay on it until the cluster counts it down
    (`released_by = failure_detector`), when the run's survivors did (measured, like the LB's
    timing): given to the replay, so that it tests what clients do around it; how that moment
    varies is checked apart (validate's `release_s`)."""
    if sessions(r)["released_by"] != "failure_detector":
        return None
    return store_down_s(r)[0]


def refused_share(r: dict[str, Any], released: float | None) -> float | None:
    """Where the release was measured (`released`: `released_at`), the run's share of later
    CONNECTs refused at once rather than held (measured): a run-level effect (some runs refuse none, others most) that
    moves a whole run's outages by a retry. Given to the replay like the release; how it varies
    is checked apart (validate's `refused_share`)."""
    if released is None:
        return None
    c = np.array(refusal_chains(r, released))
    return float(c[1] / c[:2].sum()) if c[:2].sum() else None


def replay(meta: dict[str, Any], fitted: dict[str, Any], rng: np.random.Generator,
           reps: int = REPLAYS, lost_leader: bool | None = None,
           lb_down_at_s: float | None = None, released_at_s: float | None = None,
           refused_share: float | None = None, initial_counts: tuple[int, ...] | None = None,
           horizon_s: float | None = None, first_retry_s: float | None = None) -> dict[str, Any]:
    """Replay one lab run `reps` times: the failed node's clients' outages from their
    disconnect (as the lab measures them), sessions present, expected loss. The run's state at
    the fault is given, not redrawn: whether the failed node led the session store, when the LB
    took it out (its check's phase against the fault), where the clients' back-off started (their
    first retry) and how the clients were spread over the nodes (under least connections,
    whether a crash's first retry finds an emptier survivor or the dead node). A replay ends
    where the run did (`horizon_s`): an outage still open then is censored there, as the lab's
    was (`censored`)."""
    mech = fitted["mechanism"]
    sc = replay_scenario(meta)
    counts = initial_counts if initial_counts is not None and sum(initial_counts) == sc.clients \
        else None
    sc = replace(sc, lb_down_at_s=lb_down_at_s, initial_counts=counts, horizon_s=horizon_s,
                 initial_s=first_retry_s or sc.initial_s,
                 timer_on_time_p=mech.get("timer_on_time_p") or 0.0)
    store = mech.get("session_store") or {"down_s": {}, "wait_s": 0.0}
    windows = [released_at_s] if released_at_s is not None else \
        store.get("release_pooled_s") or _windows_for(store["down_s"], lost_leader)
    outages, censored, present, lost, dup = [], [], [], [], []
    for _ in range(reps):
        w = float(rng.choice(windows)) if windows else 0.0
        r = simulate(replace(sc, session_store_down_s=w, session_store_wait_s=store_wait_s(store),
                             session_store_refuse_p=refuse_p(store, rng)
                             if refused_share is None else refused_share,
                             session_store_refuse_again_p=refuse_again_p(store),
                             session_store_release_drop_p=store.get("release_drop_p", 0.0),
                             connect_timeout_s=_client_timeout(meta, mech, rng)), rng)
        n = len(r.outage_s)
        # the client's own overhead comes with every attempt it makes after its timer last
        # ended one (a timer fires on the client's tick, whenever the attempt was sent)
        k = r.tries_after_timer
        per_try = draw(mech["reconnect_overhead_s"], int(k.sum()), rng)
        overhead = np.bincount(np.repeat(np.arange(n), k), weights=per_try, minlength=n)
        x = r.outage_s - r.notice_s + overhead + draw(mech["connack_latency_s"], n, rng)
        if horizon_s is not None:  # back after the run's end, as the lab would have seen it
            out = r.censored | (r.notice_s + x > horizon_s)
            x = np.where(out, horizon_s - r.notice_s, x)
            censored.append(out)
        outages.append(x)
        n_sub = int(round(n * sc.subscriber_fraction))
        present.append(r.session_present[:n_sub])
        lost.append(r.qos1_lost)
        dup.append(r.duplicates)
    all_out = np.concatenate(outages)
    return {"outages": all_out,
            "censored": np.concatenate(censored) if censored else np.zeros(len(all_out), bool),
            "present_ratio": float(np.concatenate(present).mean()),
            "acknowledged_lost": float(np.mean(lost)) + (
                fitted["acknowledged_lost_per_event"]
                if fitted.get("acknowledged_lost_residual_per_event") is None
                else fitted["acknowledged_lost_residual_per_event"]),
            "duplicated": float(np.mean(dup)), "scenario": sc}

