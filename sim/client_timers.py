"""The client's side of a reconnect: its back-off between attempts and when its timer gives up on
a CONNACK (paho checks its timers on a tick: a timeout fires up to a tick late)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.transient import Scenario


def client_timeouts(sc: Scenario, n: int, rng: np.random.Generator,
                    on_tick: np.ndarray | None = None) -> np.ndarray:
    """When each of n attempts gives up on its CONNACK: the timer fires at the client's first
    timer check after `connect_timeout_s`, at a phase of its own. An attempt that the client's
    own timer started (its back-off after a timeout it noticed on a tick) starts on a tick, and
    its timeout falls on one: it fires a whole tick late (the check at exactly the timeout finds
    it not yet passed; the lab measured 5.25 s for those, 5.0-5.25 s for first attempts), but for
    `timer_on_time_p` of them (the check read its clock later than the attempt was sent)."""
    if not sc.timer_tick_s:
        return np.full(n, sc.connect_timeout_s)
    lag = rng.uniform(0.0, sc.timer_tick_s, n)
    if on_tick is not None:
        whole = on_tick if not sc.timer_on_time_p else on_tick & (rng.random(n) >= sc.timer_on_time_p)
        lag = np.where(on_tick, np.where(whole, sc.timer_tick_s, 0.0), lag)
    return sc.connect_timeout_s + lag


def backoff(sc: Scenario, attempt: np.ndarray, prev: np.ndarray, rng: np.random.Generator
            ) -> np.ndarray:
    """Delay before attempt number `attempt` (0 = first reconnect)."""
    base = np.minimum(sc.initial_s * sc.multiplier ** np.minimum(attempt, 64), sc.max_s)
    if sc.jitter == "none":
        return base
    if sc.jitter == "full":
        return rng.uniform(0, base)
    if sc.jitter == "equal":
        return base / 2 + rng.uniform(0, base / 2)
    return np.minimum(sc.max_s, rng.uniform(sc.initial_s, np.maximum(3 * prev, sc.initial_s)))
