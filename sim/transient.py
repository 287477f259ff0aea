"""Failover transients, vectorised over clients (NumPy): what devices on a failed node go through.

One transient = one failure event in one region. The clients of the failed node(s) notice the loss,
back off, are routed by the LB, queue at a survivor's connection-rate limit and find their session
present or gone. Time 0 is the failure; all times are seconds. `sim/transient_reference.py` is a
per-client SimPy model with the same semantics, used as the oracle in tests.

Semantics shared by both models (each is an assumption stated once, here):
* detection: crash, disk loss and a graceful stop reset connections at once; a VM loss, hang or
  partition is noticed by the client's keepalive (PINGREQ after up to one keepalive of silence, then
  one keepalive for PINGRESP: uniform in [k, 2k], mean 1.5 k). With `probe.on_down = "reset"` the LB
  also resets flows when it marks the backend down.
* LB probe: a TCP probe fails on a dead port or host but passes on a hung node; http and mqtt
  probes fail on a hung node too. Marked down after U(0, interval) + (threshold - 1) x interval.
* an attempt routed to a failed node is refused at once (crash, disk, stop) or times out after
  `connect_timeout_s` (VM loss, partition, hang: the kernel may accept, MQTT never answers).
* admission at a survivor is FIFO through a token bucket of `max_conn_rate_per_s` behind a listen
  backlog: an attempt that finds `listen_backlog` connections waiting is dropped (its SYN is lost:
  it times out without using a slot); one that waits longer than the connect timeout fails but
  still uses its slot (the broker accepts a socket the client has closed).
* least connections counts established plus pending connections; ties go to the lowest node index.
* until `session_store_down_s` (a replicated session store electing a new leader; on EMQX, the
  cluster declaring a silent node down, whose sessions a survivor must take over) a survivor
  holds a CONNECT for up to `session_store_wait_s` and then drops it, even if the store came
  back meanwhile (or, with probability `session_store_release_drop_p`, drops it when the store
  comes back: EMQX after a partition); the client gives up first when its connect timeout is
  shorter. A client's
  later CONNECTs in that time are refused at once with probability `session_store_refuse_p`
  after a held one, `session_store_refuse_again_p` after a refused one (EMQX answered 0x88
  "server unavailable" to 24 % and 76 %: a previous attempt's takeover holds the client id).
* memory sessions survive only when the client gets back to its original node while that node's
  memory survived (hang, partition); durable sessions resume while a majority of the session's
  replicas is up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.client_timers import backoff, client_timeouts
from sim.lb_choice import choose, initial_sticky
from sim.reconnect_calendar import ATTEMPT, RELEASE, Calendar, admit

SILENT = ("vm", "hang", "partition")  # noticed by keepalive, attempts to the node time out
REFUSING = ("crash", "disk", "stop")  # connections reset at once, attempts refused
MODES = SILENT + REFUSING
MEMORY_SURVIVES = ("hang", "partition")  # the node's memory (and its sessions) outlive the fault
MAX_MQUEUE = 1000  # EMQX default max_mqueue_len (FACTS.md)
HORIZON_CAP_S = 48 * 3600.0


@dataclass(frozen=True)
class Scenario:
    """Everything one transient depends on (and nothing about the simulated year)."""

    nodes: int
    failed: tuple[int, ...]
    mode: str
    clients: int
    down_before: tuple[int, ...] = ()
    return_after_s: float = float("inf")  # when the failed nodes are healthy again
    algorithm: str = "least_connections"
    persistence: str = "none"
    sites: int = 100
    probe_protocol: str = "tcp"
    probe_interval_s: float = 5.0
    probe_threshold: int = 1
    on_down: str = "continue"
    keepalive_s: float = 60.0
    connect_timeout_s: float = 5.0
    initial_s: float = 1.0
    max_s: float = 120.0
    multiplier: float = 2.0
    jitter: str = "none"
    max_conn_rate_per_s: float | None = None
    listen_backlog: int = 1024
    max_connections: int | None = None
    overload_connections: int | None = None
    sessions: str = "memory"
    replication_factor: int = 3
    evacuate: bool = False
    qos: int = 1
    publish_per_s: float = 0.0
    subscriber_fraction: float = 0.5
    rtt_s: float = 0.02
    unreachable: bool | None = None  # the failed host stops answering (None: by mode)
    probe_timeout_s: float = 0.0  # an unanswered probe fails only after this
    connack_latency_s: float = 0.0  # attempt to CONNACK at a healthy node
    # A session store that lost its leader: a CONNECT reaching a survivor before `session_store_down_s`
    # is held `session_store_wait_s` and dropped (the stand-in dropped 140 of 140 after 4.0 s).
    session_store_down_s: float = 0.0
    session_store_wait_s: float = 0.0
    session_store_refuse_p: float = 0.0
    session_store_refuse_again_p: float | None = None  # None: the same as session_store_refuse_p
    session_store_release_drop_p: float = 0.0
    timer_tick_s: float = 0.0  # the client checks its timers this often: a timeout fires up to a tick late
    timer_on_time_p: float = 0.0  # a tick-started attempt's timeout on time, not a tick late
    lb_down_at_s: float | None = None  # when the LB took the failed nodes out, if measured (a lab replay)
    # How long the LB counts a connection its client left on a silent node (HAProxy: `timeout
    # server`, 90 s) and one to a vanished node ((retries + 1) x `timeout connect`, 20 s).
    lb_holds_closed_s: float = 0.0
    lb_connect_hold_s: float = 0.0
    initial_counts: tuple[int, ...] | None = None  # per node at the fault (None: the LB's spread)
    # Stop here (a lab run's end): clients not back are censored at it (None: HORIZON_CAP_S).
    horizon_s: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode = {self.mode!r}: allowed {', '.join(MODES)}")


@dataclass
class TransientResult:
    outage_s: np.ndarray  # per affected client: failure to CONNACK
    session_present: np.ndarray  # per affected client
    final_node: np.ndarray  # per affected client
    counts_after: np.ndarray  # connections per node when all are back (failed nodes included)
    peak_arrivals_per_s: np.ndarray  # per node: most attempts in any one second
    limit_per_s: float | None
    qos1_lost: float  # expected QoS >= 1 messages lost (subscribers without a surviving session)
    qos0_lost: float
    duplicates: float
    cascade: bool
    attempts: int = 0
    arrivals_node: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    arrivals_t: np.ndarray = field(default_factory=lambda: np.empty(0))
    initial_counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # per node
    notice_s: np.ndarray = field(default_factory=lambda: np.empty(0))  # per affected client
    tries: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # attempts, per client
    # ... after its timer last ended one (a tick timer drops how late earlier ones were; 0: never back)
    tries_after_timer: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    lb_down_s: float = float("inf")  # when the LB took the failed node out (inf: never)
    censored: np.ndarray = field(default_factory=lambda: np.empty(0, bool))  # per affected
    # client: not back by the scenario's horizon_s (its outage_s is the horizon then)


# ---------------------------------------------------------------------------- shared pieces


def _again(sc: Scenario) -> float:
    a = sc.session_store_refuse_again_p
    return sc.session_store_refuse_p if a is None else a


def initial_placement(sc: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(node, site) of every client of the region before the failure."""
    up = np.array([i for i in range(sc.nodes) if i not in sc.down_before])
    site = np.arange(sc.clients) % sc.sites
    if sc.initial_counts is not None:
        return np.repeat(np.arange(len(sc.initial_counts)), sc.initial_counts), site
    if sc.algorithm == "source_ip" and sc.persistence == "none":
        return up[site_hash(sc.sites)[site] % len(up)], site
    if sc.persistence == "client_ip":  # sites were spread by the first choice, then stuck
        return up[site % len(up)], site
    if sc.algorithm == "five_tuple":
        return up[rng.integers(len(up), size=sc.clients)], site
    return up[np.arange(sc.clients) % len(up)], site


def site_hash(sites: int) -> np.ndarray:
    """A fixed pseudo-random hash of each site's address (the same in every run)."""
    return np.random.default_rng(20261126).integers(0, 2**31, size=sites)


def attempts_time_out(sc: Scenario) -> bool:
    """Does an attempt routed to the failed node hang until the connect timeout (rather than
    being refused at once)? A crashed process on a live host refuses; a host that is gone (VM
    loss, partition, a container whose address vanished) or hung does not answer."""
    return sc.unreachable if sc.unreachable is not None else sc.mode not in REFUSING


def detection_times(sc: Scenario, n: int, rng: np.random.Generator, lb_down_s: np.ndarray
                    ) -> np.ndarray:
    """When each affected client notices the loss."""
    if sc.mode in REFUSING:
        return np.zeros(n)
    d = rng.uniform(sc.keepalive_s, 2 * sc.keepalive_s, size=n)
    if sc.on_down == "reset":
        d = np.minimum(d, lb_down_s.min())
    return d


def noticed_on_tick(sc: Scenario, detect: np.ndarray, lb_down_s: np.ndarray) -> np.ndarray:
    """Which clients noticed the loss by their own keepalive timer (on one of its ticks, so their
    first attempt's timeout fires a whole tick late, see client_timeouts), not by a reset."""
    if sc.mode in REFUSING or not sc.timer_tick_s:
        return np.zeros(len(detect), dtype=bool)
    if sc.on_down != "reset" or not len(lb_down_s):
        return np.ones(len(detect), dtype=bool)
    return detect < lb_down_s.min()


def lb_down_times(sc: Scenario, rng: np.random.Generator) -> np.ndarray:
    """When the LB stops routing to each failed node (inf if its probe keeps passing)."""
    if sc.lb_down_at_s is not None:
        return np.full(len(sc.failed), sc.lb_down_at_s)
    passes = sc.mode == "hang" and sc.probe_protocol == "tcp"
    first = rng.uniform(0, sc.probe_interval_s, size=len(sc.failed))
    t = first + (sc.probe_threshold - 1) * sc.probe_interval_s
    if attempts_time_out(sc):
        t = t + sc.probe_timeout_s
    return np.full(len(sc.failed), np.inf) if passes else t


def session_survival(sc: Scenario, n: int, rng: np.random.Generator) -> np.ndarray:
    """Durable sessions: does a majority of each session's replicas survive the failure?"""
    if sc.sessions != "durable":
        return np.zeros(n, dtype=bool)
    alive = sc.nodes - len(sc.failed) - len(sc.down_before)
    dead = sc.nodes - alive
    rf = min(sc.replication_factor, sc.nodes)
    up_replicas = rng.hypergeometric(alive, dead, rf, size=n) if dead else np.full(n, rf)
    return up_replicas > rf // 2


def message_outcome(sc: Scenario, outage: np.ndarray, present: np.ndarray, n_subscribers: int
                    ) -> tuple[float, float, float]:
    """Expected QoS>=1 lost, QoS 0 lost, duplicates for the affected clients."""
    rate = sc.publish_per_s
    sub_out, sub_present = outage[:n_subscribers], present[:n_subscribers]
    published = rate * sub_out
    if sc.qos == 0:
        return 0.0, float(published.sum()), 0.0
    lost = np.where(sub_present, np.maximum(published - MAX_MQUEUE, 0.0), published).sum()
    # A publisher's unacknowledged QoS 1 message is resent after reconnect; half the time the
    # broker had routed it already (assumption): a duplicate.
    publishers = len(outage) - n_subscribers
    dup = 0.0 if sc.qos == 2 else publishers * min(1.0, rate * sc.rtt_s) * 0.5
    return float(lost), 0.0, float(dup)


def finish(sc: Scenario, outage, final_node, orig_node, counts, arrivals_node, arrivals_t,
           rng, attempts: int, limit, initial_counts: np.ndarray, notice: np.ndarray,
           tries: np.ndarray) -> TransientResult:
    n = len(outage)
    survives = session_survival(sc, n, rng)
    back_home = final_node == orig_node
    memory_ok = sc.mode in MEMORY_SURVIVES
    if sc.mode == "stop" and sc.evacuate:
        present = np.ones(n, dtype=bool)
    else:
        present = survives | (back_home & memory_ok)
    n_sub = int(round(n * sc.subscriber_fraction))
    lost, lost0, dup = message_outcome(sc, outage, present, n_sub)
    peak = np.zeros(sc.nodes, dtype=np.int64)
    if len(arrivals_t):
        sec = np.floor(arrivals_t).astype(np.int64)
        key = arrivals_node.astype(np.int64) * (sec.max() + 1) + sec
        uniq, cnt = np.unique(key, return_counts=True)
        np.maximum.at(peak, uniq // (sec.max() + 1), cnt)
    cascade = sc.overload_connections is not None and bool(counts.max() > sc.overload_connections)
    return TransientResult(outage, present, final_node, counts, peak, limit, lost, lost0, dup,
                           cascade, attempts, arrivals_node, arrivals_t, initial_counts, notice,
                           tries)


# ---------------------------------------------------------------------------- vectorised model


def simulate(sc: Scenario, rng: np.random.Generator) -> TransientResult:
    node_of, site_of = initial_placement(sc, rng)
    failed = np.array(sc.failed)
    hit = np.isin(node_of, failed)
    orig = node_of[hit]
    site = site_of[hit]
    n = int(hit.sum())
    counts = np.bincount(node_of[~hit], minlength=sc.nodes).astype(np.int64)  # established
    pending = np.zeros(sc.nodes, dtype=np.int64)
    lb_down = lb_down_times(sc, rng)
    detect = detection_times(sc, n, rng, lb_down)
    attempt = np.zeros(n, dtype=np.int64)
    prev = np.full(n, sc.initial_s)
    delay = backoff(sc, attempt, prev, rng)
    prev = delay
    next_a = detect + delay
    outage = np.full(n, np.nan)
    final = np.full(n, -1)
    rate = sc.max_conn_rate_per_s
    next_free = np.zeros(sc.nodes)
    sticky = initial_sticky(sc)
    hashes = site_hash(sc.sites)
    is_failed = np.zeros(sc.nodes, dtype=bool)
    is_failed[failed] = True
    lb_down_of = np.full(sc.nodes, np.inf)
    lb_down_of[failed] = lb_down
    absent = np.zeros(sc.nodes, dtype=bool)
    absent[list(sc.down_before)] = True
    refuse_now = not attempts_time_out(sc)
    held_once = np.zeros(n, dtype=bool)  # a survivor has held one of this client's CONNECTs
    was_refused = np.zeros(n, dtype=bool)  # ... and refused the last one
    on_tick = noticed_on_tick(sc, detect, lb_down)  # the client's last attempt ended by its own timer
    timed_out_at = np.zeros(n, dtype=np.int64)  # attempts made when its timer last ended one

    calendar = Calendar()
    calendar.push(next_a, np.arange(n), np.full(n, ATTEMPT, dtype=np.int8))
    hold = sc.lb_holds_closed_s if sc.mode in SILENT else 0.0  # a crashed server's side closes
    if hold:  # the LB still counts the failed node's connections after their clients left
        np.add.at(pending, orig, 1)
        calendar.push(detect + hold, orig, np.full(n, RELEASE, dtype=np.int8))
    horizon = HORIZON_CAP_S if sc.horizon_s is None else min(sc.horizon_s, HORIZON_CAP_S)
    arrivals_node: list[np.ndarray] = []
    arrivals_t: list[np.ndarray] = []
    attempts = 0
    for t0, idx, a in calendar.steps(pending):
        if t0 > horizon:
            break
        healthy = ~absent & (~is_failed | (t0 >= sc.return_after_s))
        in_rotation = ~absent & (healthy | (t0 < lb_down_of))
        rot = np.flatnonzero(in_rotation)
        attempts += len(idx)
        if not len(rot):  # nothing to connect to: everyone backs off again
            chosen = np.full(len(idx), -1)
        else:
            chosen = choose(sc, rot, in_rotation, idx, site, counts + pending, sticky, hashes,
                             rng)
        arrivals_node.append(chosen)
        arrivals_t.append(a)
        fail_t = np.full(len(idx), np.nan)
        timeout = client_timeouts(sc, len(idx), rng, on_tick[idx])
        ok_h = (chosen >= 0) & healthy[np.maximum(chosen, 0)]
        bad = ~ok_h & (chosen >= 0)
        fail_t[chosen < 0] = a[chosen < 0]
        fail_t[bad] = a[bad] + (0.0 if refuse_now else timeout[bad])
        for j in np.flatnonzero(np.bincount(chosen[ok_h], minlength=sc.nodes)).tolist():
            sel = np.flatnonzero(chosen == j)
            if sc.max_connections is not None:
                room = max(sc.max_connections - int(counts[j] + pending[j]), 0)
                refused = sel[room:]
                fail_t[refused] = a[refused]
                sel = sel[:room]
            if not len(sel):
                continue
            aj = a[sel]
            if aj.min() < sc.session_store_down_s:  # held, then dropped (see Scenario)
                held = aj < sc.session_store_down_s
                hs = sel[held]
                p_ref = np.where(was_refused[idx[hs]], _again(sc), sc.session_store_refuse_p)
                refused = held_once[idx[hs]] & (rng.random(len(hs)) < p_ref) \
                    if p_ref.any() else np.zeros(len(hs), dtype=bool)
                was_refused[idx[hs]] = refused
                end = aj[held] + np.minimum(sc.session_store_wait_s, timeout[hs])
                if sc.session_store_release_drop_p:
                    drop = rng.random(len(hs)) < sc.session_store_release_drop_p
                    end = np.where(drop, np.minimum(end, sc.session_store_down_s), end)
                fail_t[hs] = np.where(refused, aj[held], end)
                held_once[idx[hs]] = True
                sel, aj = sel[~held], aj[~held]
                if not len(sel):
                    continue
            if rate is None:
                start = aj
            else:
                start, next_free[j] = admit(aj, next_free[j], rate, sc.listen_backlog / rate)
            wait = start - a[sel]  # nan: dropped at a full backlog
            good = wait <= timeout[sel]
            won = idx[sel[good]]
            outage[won] = start[good] + sc.connack_latency_s
            final[won] = j
            counts[j] += int(good.sum())
            late = sel[~good]
            fail_t[late] = a[late] + timeout[late]
        failed_now = np.flatnonzero(~np.isnan(fail_t))
        if len(failed_now):
            who = idx[failed_now]
            # Attempts that waited on a node hold a connection there until they fail.
            holding = failed_now[(chosen[failed_now] >= 0) & (fail_t[failed_now] > a[failed_now])]
            if len(holding):
                np.add.at(pending, chosen[holding], 1)
            # ... and on a silent failed node the LB holds it past the client's giving up
            to_failed = is_failed[chosen[holding]]
            released_at = fail_t[holding] + np.where(to_failed, hold, 0.0)
            if sc.lb_connect_hold_s and sc.mode not in SILENT:  # its address gone: never connects
                released_at = np.where(to_failed, np.maximum(released_at, a[holding] + sc.lb_connect_hold_s),
                                       released_at)
            on_tick[who] = np.abs(fail_t[failed_now] - a[failed_now] - timeout[failed_now]) < 1e-9
            attempt[who] += 1
            timed = who[on_tick[who]] if sc.timer_tick_s else who[:0]  # a tick timer drops
            timed_out_at[timed] = attempt[timed]  # how late the attempt was sent
            d = backoff(sc, attempt[who], prev[who], rng)
            prev[who] = d
            next_a[who] = fail_t[failed_now] + d
            # one filing for both (releases first within a second, as two filings would be)
            calendar.push(np.concatenate((released_at, next_a[who])),
                          np.concatenate((chosen[holding], who)),
                          np.concatenate((np.full(len(holding), RELEASE, dtype=np.int8),
                                          np.full(len(who), ATTEMPT, dtype=np.int8))))
    sent = attempt + ~np.isnan(outage)  # attempts made by the horizon (the winning one too)
    never = np.isnan(outage) | (outage > horizon)
    outage[never] = horizon if sc.horizon_s is not None else HORIZON_CAP_S
    all_nodes = np.concatenate(arrivals_node) if arrivals_node else np.empty(0, int)
    all_t = np.concatenate(arrivals_t) if arrivals_t else np.empty(0)
    keep = all_nodes >= 0
    result = finish(sc, outage, final, orig, counts, all_nodes[keep], all_t[keep], rng, attempts,
                    rate, np.bincount(node_of, minlength=sc.nodes), detect, sent)
    result.lb_down_s = float(lb_down.min()) if len(lb_down) else float("inf")
    result.censored = never if sc.horizon_s is not None else np.zeros(n, dtype=bool)
    result.tries_after_timer = np.where(never, 0, sent - timed_out_at)  # none when never back
    return result
