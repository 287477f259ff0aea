"""Per-client SimPy model of one failover transient: the oracle for sim/transient.py.

One SimPy process per client, exact event order, the same semantics (see sim/transient.py).
Slow by design; use it for small N only.
"""

from __future__ import annotations

import numpy as np
import simpy

from sim.client_timers import client_timeouts
from sim.lb_choice import initial_sticky
from sim.transient import (
    HORIZON_CAP_S,
    SILENT,
    Scenario,
    TransientResult,
    _again,
    attempts_time_out,
    detection_times,
    finish,
    initial_placement,
    lb_down_times,
    noticed_on_tick,
    site_hash,
)


def _backoff_one(sc: Scenario, attempt: int, prev: float, rng: np.random.Generator) -> float:
    """Written again on purpose, scalar: the oracle must not share the vectorised model's code."""
    base = min(sc.initial_s * sc.multiplier ** min(attempt, 64), sc.max_s)
    if sc.jitter == "none":
        return base
    if sc.jitter == "full":
        return float(rng.uniform(0, base))
    if sc.jitter == "equal":
        return base / 2 + float(rng.uniform(0, base / 2))
    return min(sc.max_s, float(rng.uniform(sc.initial_s, max(3 * prev, sc.initial_s))))


def simulate_reference(sc: Scenario, rng: np.random.Generator) -> TransientResult:
    node_of, site_of = initial_placement(sc, rng)
    failed = set(sc.failed)
    hit = np.isin(node_of, list(failed))
    orig, site = node_of[hit], site_of[hit]
    n = int(hit.sum())
    counts = np.bincount(node_of[~hit], minlength=sc.nodes).astype(np.int64)
    pending = np.zeros(sc.nodes, dtype=np.int64)
    lb_down = dict(zip(sc.failed, lb_down_times(sc, rng), strict=True))
    detect = detection_times(sc, n, rng, np.array(list(lb_down.values())))
    first_on_tick = noticed_on_tick(sc, detect, np.array(list(lb_down.values())))
    next_free = np.zeros(sc.nodes)
    sticky = initial_sticky(sc)
    hashes = site_hash(sc.sites)
    outage = np.full(n, np.nan)
    final = np.full(n, -1)
    tries = np.zeros(n, dtype=np.int64)
    after_timer = np.zeros(n, dtype=np.int64)  # attempts after the last one its timer ended
    made = np.zeros(n, dtype=np.int64)  # attempts sent so far (for a client never back)
    arrivals: list[tuple[int, float]] = []
    rate = sc.max_conn_rate_per_s
    env = simpy.Environment()

    def healthy(j: int) -> bool:
        return j not in sc.down_before and (j not in failed or env.now >= sc.return_after_s)

    def rotation() -> list[int]:
        return [j for j in range(sc.nodes) if j not in sc.down_before
                and (healthy(j) or env.now < lb_down[j])]

    def pick(rot: list[int], s: int) -> int:
        load = counts + pending
        if sticky is not None and sticky[s] in rot:
            return int(sticky[s])
        if sc.algorithm == "source_ip":
            j = rot[hashes[s] % len(rot)]
        elif sc.algorithm in ("five_tuple", "round_robin"):
            j = rot[int(rng.integers(len(rot)))]
        else:
            j = min(rot, key=lambda x: (load[x], x))
        if sticky is not None:
            sticky[s] = j
        return int(j)

    held_once = [False] * n  # a survivor has held one of this client's CONNECTs
    was_refused = [False] * n  # ... and refused the last one

    silent_hold = sc.lb_holds_closed_s if sc.mode in SILENT else 0.0

    def held_by_lb(j: int, until: float):
        """The LB counts a connection to node j until `until` (after its client let go)."""
        pending[j] += 1
        yield env.timeout(max(until - env.now, 0.0))
        pending[j] -= 1

    def lb_release(j: int, a: float):
        """What the LB does with a failed attempt's connection to node j, sent at a: on a silent
        failed node it counts it for `lb_holds_closed_s`; to a vanished one it keeps connecting
        until `lb_connect_hold_s` after the attempt."""
        if j in failed and silent_hold:
            env.process(held_by_lb(j, env.now + silent_hold))
        elif j in failed and sc.lb_connect_hold_s and sc.mode not in SILENT:
            env.process(held_by_lb(j, a + sc.lb_connect_hold_s))

    def client(i: int):
        if silent_hold:  # the connection its client left on the silent node: still counted
            env.process(held_by_lb(int(orig[i]), detect[i] + silent_hold))
        yield env.timeout(detect[i])
        attempt, prev = 0, sc.initial_s
        # the last attempt ended by the client's own timer (client_timeouts); at first: the
        # client's timer noticed the loss
        on_tick = bool(first_on_tick[i])
        timer_at = 0  # attempts made when its timer last ended one
        while True:
            if on_tick and sc.timer_tick_s:  # its timer ended the last attempt, on a tick
                timer_at = attempt
            prev = _backoff_one(sc, attempt, prev, rng)
            yield env.timeout(prev)
            attempt += 1
            made[i] = attempt
            rot = rotation()
            if not rot:
                on_tick = False
                continue
            j = pick(rot, int(site[i]))
            a = env.now
            arrivals.append((j, a))
            timeout = float(client_timeouts(sc, 1, rng, np.array([on_tick]))[0])
            on_tick = False
            if not healthy(j):
                if attempts_time_out(sc):
                    pending[j] += 1
                    yield env.timeout(timeout)
                    pending[j] -= 1
                    on_tick = True
                    lb_release(j, a)
                continue
            if sc.max_connections is not None and counts[j] + pending[j] >= sc.max_connections:
                continue
            if a < sc.session_store_down_s:  # held by a survivor whose session store is down
                p_ref = _again(sc) if was_refused[i] else sc.session_store_refuse_p
                refused = held_once[i] and p_ref > 0 and rng.random() < p_ref
                held_once[i] = True
                was_refused[i] = refused
                if refused:
                    continue
                hold = min(sc.session_store_wait_s, timeout)
                if sc.session_store_release_drop_p and rng.random() < sc.session_store_release_drop_p:
                    hold = min(hold, sc.session_store_down_s - a)
                pending[j] += 1
                yield env.timeout(hold)
                pending[j] -= 1
                on_tick = hold == timeout
                continue
            start = env.now if rate is None else max(env.now, next_free[j])
            if rate is not None and start - env.now > sc.listen_backlog / rate:  # backlog full: SYN lost
                pending[j] += 1
                yield env.timeout(a + timeout - env.now)  # the client's timer
                pending[j] -= 1
                on_tick = True
                continue
            if rate is not None:
                next_free[j] = start + 1 / rate
            if start - a <= timeout:
                counts[j] += 1
                outage[i], final[i] = start + sc.connack_latency_s, j
                tries[i], after_timer[i] = attempt, attempt - timer_at
                return
            pending[j] += 1
            yield env.timeout(a + timeout - env.now)
            pending[j] -= 1
            on_tick = True

    for i in range(n):
        env.process(client(i))
    horizon = HORIZON_CAP_S if sc.horizon_s is None else min(sc.horizon_s, HORIZON_CAP_S)
    env.run(until=horizon)
    never = np.isnan(outage) | (outage > horizon)
    outage[never] = horizon
    tries[never] = made[never]
    after_timer[never] = 0
    nodes = np.array([j for j, _ in arrivals], dtype=np.int64)
    times = np.array([t for _, t in arrivals])
    result = finish(sc, outage, final, orig, counts, nodes, times, rng, len(arrivals), rate,
                  np.bincount(node_of, minlength=sc.nodes), detect, tries)
    result.censored = never if sc.horizon_s is not None else np.zeros(n, dtype=bool)
    result.tries_after_timer = after_timer
    return result
