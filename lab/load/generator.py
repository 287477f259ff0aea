"""One load-generator process: many paho-mqtt 2.x clients on one asyncio loop.

paho's external-loop API (socket callbacks + loop_read / loop_write / loop_misc, as paho's
examples/loop_asyncio.py) costs about 7 KiB per client; a thread per client (loop_start) about
48 KiB and 3 descriptors, and select() stops it at a few hundred (FACTS.md). Publishing is open
loop: each message has a due time, and one sent more than OVERRUN_S after it counts as overrun
(emqtt-bench's pub_overrun). Every second the process appends its cumulative counters and its own
CPU seconds to its JSONL file; at the end its HDR histograms (microseconds), so that nothing
measured is lost when a run is stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from hdrh.histogram import HdrHistogram

OVERRUN_S = 0.1  # a message sent this late is behind schedule
TICK_S = 0.01  # the publish scheduler's resolution
HIST_MAX_US = 120_000_000


@dataclass(frozen=True)
class Step:
    """One plateau: the clients this process holds and the rate each publisher sends at."""
    subscribers: int
    publishers: int
    publish_per_s: float
    offline: int = 0  # persistent sessions that subscribe, then go offline (their messages queue)
    topics: int = 0  # distinct topics per process (0: one per subscriber; client i uses topic
    # i mod topics); fewer topics than publishers is fan-in, than subscribers fan-out


@dataclass
class Plan:
    """What one process does; the runner splits a scenario's totals over the processes."""
    index: int
    run_id: str
    endpoints: list[tuple[str, int]]  # (host, port): the LB, or each node round robin
    source_addresses: list[str]  # bind addresses ("" = the kernel's choice)
    steps: list[Step]
    step_s: float
    connect_rate_per_s: float
    keepalive_s: int = 60
    qos: int = 0
    payload_bytes: int = 64
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0


def _hist() -> HdrHistogram:
    return HdrHistogram(1, HIST_MAX_US, 2)


class Generator:
    def __init__(self, plan: Plan, out_path: str) -> None:
        self.plan, self.out = plan, open(out_path, "a", encoding="utf-8")
        self.loop = asyncio.get_event_loop()
        self.clients: dict[str, mqtt.Client] = {}
        self.role: dict[str, str] = {}
        self.connected: set[str] = set()
        self.connect_started: dict[str, float] = {}
        self.delay: dict[str, float] = {}
        self.counts = dict(connects=0, connack_failed=0, disconnects=0, sent=0, acked=0, recv=0,
                           overrun=0, publish_errors=0)
        self.hist = {"connack_us": _hist(), "ack_us": _hist(), "delivery_us": _hist()}
        self.inflight: dict[tuple[str, int], float] = {}
        self.seq: dict[str, int] = {}
        self.stopping = False
        self.publishers: list[str] = []
        self.rate = 0.0
        self.pad = ""
        self.gone: set[str] = set()  # offline sessions, disconnected on purpose
        self.attempts: dict[str, int] = {}
        self.t0 = 0.0  # monotonic start of the first step (generator_main sets it)
        self.prefix = f"{plan.run_id}-g{plan.index}"
        self.topics = 0

    # -- output ----------------------------------------------------------------------------
    def write(self, ev: str, **fields: Any) -> None:
        self.out.write(json.dumps({"ev": ev, "t": time.time(), "g": self.plan.index, **fields},
                                  separators=(",", ":")) + "\n")
        self.out.flush()

    def sample(self) -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.write("sample", connected=len(self.connected), clients=len(self.clients),
                   cpu_s=ru.ru_utime + ru.ru_stime, rss_kib=ru.ru_maxrss, **self.counts)

    # -- clients ---------------------------------------------------------------------------
    def _client(self, cid: str, role: str) -> mqtt.Client:
        persistent = role == "offline"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                        clean_session=not persistent, reconnect_on_failure=False)
        c.on_socket_open = lambda cl, ud, sock: self.loop.add_reader(sock, cl.loop_read)
        c.on_socket_close = lambda cl, ud, sock: self.loop.remove_reader(sock)
        c.on_socket_register_write = lambda cl, ud, sock: self.loop.add_writer(sock, cl.loop_write)
        c.on_socket_unregister_write = lambda cl, ud, sock: self.loop.remove_writer(sock)
        c.on_connect = lambda cl, ud, flags, rc, props: self._on_connect(cid, role, cl, rc)
        c.on_disconnect = lambda cl, ud, flags, rc, props: self._on_disconnect(cid)
        if role in ("sub", "offline"):
            c.on_message = self._on_message
            c.on_subscribe = lambda cl, ud, mid, codes, props: self._on_subscribe(cid, cl)
        else:
            c.on_publish = lambda cl, ud, mid, rc, props: self._on_publish(cid, mid)
        self.clients[cid], self.role[cid] = c, role
        return c

    def _endpoint(self, k: int) -> tuple[str, int, str]:
        """Client k's endpoint and source; a retry moves on to the next endpoint."""
        host, port = self.plan.endpoints[k % len(self.plan.endpoints)]
        src = self.plan.source_addresses[k % len(self.plan.source_addresses)]
        return host, port, src

    def _connect(self, cid: str) -> None:
        c = self.clients[cid]
        host, port, src = self._endpoint(int(cid.rsplit("-", 1)[1][1:]) + self.plan.index
                                         + self.attempts.get(cid, 0))
        self.connect_started[cid] = time.monotonic()
        try:
            # paho's connect() waits for the TCP handshake on this loop: cheap to a container on
            # this host (~0.1 ms), so a storm goes through the LB (lab.load.scenario refuses a kill
            # with target = "nodes"), where no connect waits on a dead address.
            c.connect(host, port, self.plan.keepalive_s, bind_address=src)
            c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as err:
            self.counts["connack_failed"] += 1
            self.write("connect_error", c=cid, error=type(err).__name__)
            self._retry(cid)

    def _retry(self, cid: str) -> None:
        if self.stopping:
            return
        self.attempts[cid] = self.attempts.get(cid, 0) + 1
        d = self.delay.get(cid, self.plan.reconnect_min_s)
        self.delay[cid] = min(2 * d, self.plan.reconnect_max_s)
        self.loop.call_later(d, self._connect, cid)

    def _on_connect(self, cid: str, role: str, c: mqtt.Client, rc: Any) -> None:
        if rc.is_failure:
            self.counts["connack_failed"] += 1
            return
        took = time.monotonic() - self.connect_started.get(cid, time.monotonic())
        self.hist["connack_us"].record_value(max(1, int(took * 1e6)))
        self.counts["connects"] += 1
        self.connected.add(cid)
        self.delay[cid] = self.plan.reconnect_min_s
        if role in ("sub", "offline") and not (role == "offline" and cid in self.gone):
            c.subscribe(self._topic(cid), qos=self.plan.qos)

    def _topic(self, cid: str) -> str:
        i = int(cid.rsplit("-", 1)[1][1:])
        return f"load/{self.prefix}/{i % self.topics}"

    def _on_subscribe(self, cid: str, c: mqtt.Client) -> None:
        if self.role[cid] == "offline" and cid not in self.gone:
            self.gone.add(cid)  # subscribed: it goes offline and its messages queue
            c.disconnect()

    def _on_disconnect(self, cid: str) -> None:
        self.connected.discard(cid)
        self.counts["disconnects"] += 1
        if cid in self.gone:
            return  # went offline on purpose: its session queues
        self._retry(cid)

    def _on_message(self, c: mqtt.Client, ud: Any, msg: mqtt.MQTTMessage) -> None:
        self.counts["recv"] += 1
        try:
            sent = json.loads(msg.payload)["t"]
        except (ValueError, KeyError):
            return
        self.hist["delivery_us"].record_value(max(1, min(HIST_MAX_US, int((time.time() - sent) * 1e6))))

    def _on_publish(self, cid: str, mid: int) -> None:
        t0 = self.inflight.pop((cid, mid), None)
        if t0 is not None:
            self.counts["acked"] += 1
            self.hist["ack_us"].record_value(max(1, int((time.monotonic() - t0) * 1e6)))

    # -- schedule --------------------------------------------------------------------------
    async def _misc(self) -> None:
        """paho's keepalive and timeouts, for all clients, once a second."""
        while not self.stopping:
            for c in list(self.clients.values()):
                c.loop_misc()
            await asyncio.sleep(1.0)

    async def _sampler(self) -> None:
        while not self.stopping:
            self.sample()
            await asyncio.sleep(1.0)

    async def _ramp(self, add: list[tuple[str, str]]) -> None:
        """Open connections at the plan's rate (this process's share)."""
        gap = 1.0 / self.plan.connect_rate_per_s
        start = time.monotonic()
        for k, (cid, role) in enumerate(add):
            if self.stopping:
                return
            due = start + k * gap
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            self._client(cid, role)
            self._connect(cid)

    async def _publish(self) -> None:
        """Open loop: message k of the process is due at start + k / rate."""
        k, start, rate = 0, time.monotonic(), self.rate
        while not self.stopping:
            if self.rate != rate:  # a new step: a new schedule
                k, start, rate = 0, time.monotonic(), self.rate
            now = time.monotonic()
            while rate > 0 and self.publishers and start + k / rate <= now:
                late = now - (start + k / rate)
                if late > OVERRUN_S:
                    self.counts["overrun"] += 1
                self._send(self.publishers[k % len(self.publishers)])
                k += 1
            await asyncio.sleep(TICK_S)

    def _send(self, cid: str) -> None:
        if cid not in self.connected:
            return  # a publisher that is reconnecting skips its slot (counted by sent vs due)
        s = self.seq[cid] = self.seq.get(cid, -1) + 1
        body = json.dumps({"p": cid, "s": s, "t": time.time(), "x": self.pad})
        info = self.clients[cid].publish(self._topic(cid), body, qos=self.plan.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.counts["publish_errors"] += 1
            return
        self.counts["sent"] += 1
        if self.plan.qos:
            self.inflight[(cid, info.mid)] = time.monotonic()

    async def run(self, stop_at: float) -> None:
        self.pad = "x" * max(0, self.plan.payload_bytes - 60)
        tasks = [self.loop.create_task(self._misc()), self.loop.create_task(self._sampler()),
                 self.loop.create_task(self._publish())]
        have = {"sub": 0, "pub": 0, "offline": 0}
        prefix = self.prefix
        for k, step in enumerate(self.plan.steps):
            self.write("step", step=k, pid=os.getpid(), **step.__dict__)
            self.topics = step.topics or max(1, step.subscribers)
            add = [(f"{prefix}-{r}{i}", role) for role, r, n in (
                ("offline", "o", step.offline), ("sub", "s", step.subscribers),
                ("pub", "p", step.publishers)) for i in range(have[role], n)]
            for role, n in (("offline", step.offline), ("sub", step.subscribers),
                            ("pub", step.publishers)):
                have[role] = max(have[role], n)
            if add:  # no publishing while connections open: the ramp measures connects alone
                self.rate = 0.0  # (and on 2 cores a broker's connect work starves the schedule)
            await self._ramp(add)
            self.publishers = [c for c, r in self.role.items() if r == "pub"][:step.publishers]
            self.rate = step.publish_per_s * len(self.publishers)
            end = self._step_end(k)
            while time.monotonic() < min(end, stop_at) and not self.stopping:
                await asyncio.sleep(0.2)
            if time.monotonic() >= stop_at:
                break
        self.stopping = True
        self.sample()
        for c in self.clients.values():
            c.disconnect()
        self.write("histograms", **{k: h.encode().decode() for k, h in self.hist.items()})
        for t in tasks:
            t.cancel()
        self.out.close()

    def _step_end(self, k: int) -> float:
        return self.t0 + (k + 1) * self.plan.step_s


def generator_main(plan: Plan, out_path: str, start_at: float, stop_at: float) -> None:
    """Process entry point: wait for the common start, run the steps, stop at `stop_at`
    (both time.time()); bounded by the plan's steps and by stop_at."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    g = Generator(plan, out_path)
    delay = max(0.0, start_at - time.time())
    time.sleep(delay)
    g.t0 = time.monotonic()
    mono_stop = g.t0 + (stop_at - start_at)
    try:
        loop.run_until_complete(g.run(mono_stop))
    except KeyboardInterrupt:
        g.stopping = True
    finally:
        loop.close()
