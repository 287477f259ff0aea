"""The probe fleet: paho-mqtt 2.x devices through the LB, recording what they live through.

Subscribers are persistent (clean session off / session expiry on) and subscribe once; after a
reconnect without `session present` they subscribe again, as a device would. Publishers send
`{"p", "s", "t"}` to one subscriber's topic each at a fixed rate.

All clients share one I/O thread on an epoll selector (paho's external-loop API): paho's own
`loop_start` uses select(), which cannot watch descriptors above 1024 (~340 clients). Reconnects
follow paho's policy: doubling from `reconnect_min_s` to `reconnect_max_s`, no jitter (FACTS.md).
"""

from __future__ import annotations

import heapq
import json
import selectors
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from lab.history import HistoryWriter

# paho's timers (keepalive, the wait for CONNACK) are checked this often by the I/O thread: a
# client gives up on a silent attempt between keepalive and keepalive + this. Each client has its
# own phase, as independent devices do: on one shared tick all clients of a node would notice and
# retry in lockstep, and a whole run would be one sample of the timing.
TIMER_TICK_S = 0.25
TIMER_PHASE = "per_client"
MAX_CLIENTS = 2000


@dataclass(frozen=True)
class FleetSettings:
    subscribers: int = 25
    publishers: int = 25
    qos: int = 1
    keepalive_s: int = 5
    publish_per_s: float = 2.0
    reconnect_min_s: int = 1
    reconnect_max_s: int = 8
    protocol: str = "3.1.1"  # "5" for EMQX; the NATS stand-in speaks 3.1.1 only
    session_expiry_s: int = 7200
    persistent: bool = True  # subscribers keep their session across reconnects

    def __post_init__(self) -> None:
        if self.subscribers < 1 or self.publishers < 0:
            raise ValueError("clients.subscribers must be >= 1 and clients.publishers >= 0")
        if self.subscribers + self.publishers > MAX_CLIENTS:
            raise ValueError(f"clients.subscribers + clients.publishers = "
                             f"{self.subscribers + self.publishers}: at most {MAX_CLIENTS} "
                             "(the probe fleet's one I/O thread; tested with 500)")
        if self.qos not in (0, 1):
            raise ValueError(f"clients.qos = {self.qos}: allowed 0, 1")
        if self.protocol not in ("3.1.1", "5"):
            raise ValueError(f"clients.protocol = {self.protocol!r}: allowed '3.1.1', '5'")


class Fleet:
    def __init__(self, host: str, port: int, settings: FleetSettings, history: HistoryWriter,
                 run_id: str) -> None:
        self.host, self.port, self.s, self.h, self.run = host, port, settings, history, run_id
        self.subs = [self._client(f"{run_id}-s{i}", subscriber=i) for i in range(settings.subscribers)]
        self.pubs = [self._client(f"{run_id}-p{i}") for i in range(settings.publishers)]
        self._seq = [0] * settings.publishers
        # paho may call on_publish before publish() returns: whichever of the two comes second
        # writes the ack. Never call into paho while holding this lock (paho holds its own).
        self._mid: dict[tuple[int, int], int] = {}  # (publisher, mid) -> seq, awaiting PUBACK
        self._early: set[tuple[int, int]] = set()  # PUBACKs seen before publish() returned
        self._mid_lock = threading.Lock()
        self._stop = threading.Event()
        self._publisher_thread: threading.Thread | None = None
        self.connected: set[str] = set()
        self.subscribed: set[str] = set()  # SUBACK seen (or session present): safe to publish to
        self._sel = selectors.DefaultSelector()
        self._sel_lock = threading.Lock()
        self._due: dict[mqtt.Client, float] = {}  # client -> when to try to (re)connect
        self._delay: dict[mqtt.Client, float] = {}
        self._closing = threading.Event()
        self._io_done = threading.Event()
        self._io_thread = threading.Thread(target=self._io_loop, daemon=True, name="fleet-io")

    def _client(self, cid: str, subscriber: int | None = None) -> mqtt.Client:
        v5 = self.s.protocol == "5"
        keep = subscriber is not None and self.s.persistent
        kwargs = {"protocol": mqtt.MQTTv5} if v5 else {
            "protocol": mqtt.MQTTv311, "clean_session": not keep}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, **kwargs)
        c.on_socket_open = lambda client, u, sock: self._watch(sock, client, write=False)
        c.on_socket_close = lambda client, u, sock: self._unwatch(sock)
        c.on_socket_register_write = lambda client, u, sock: self._watch(sock, client, write=True)
        c.on_socket_unregister_write = lambda client, u, sock: self._watch(sock, client, write=False)
        topic = f"twin/{self.run}/{subscriber}" if subscriber is not None else None

        def on_connect(client, userdata, flags, rc, props=None):
            sp = bool(flags.session_present)
            self.h.write("connect", c=cid, sp=sp, rc=int(rc.value if hasattr(rc, "value") else rc))
            if not rc.is_failure:
                self.connected.add(cid)
                self._delay[client] = self.s.reconnect_min_s
                # A session the broker kept has its subscription only if a SUBACK was seen: a
                # connection dropped between CONNACK and SUBACK comes back "present" but empty.
                if topic is not None and (not sp or cid not in self.subscribed):
                    client.subscribe(topic, qos=self.s.qos)

        def on_disconnect(client, userdata, flags, rc, props=None):
            self.connected.discard(cid)
            self.h.write("disconnect", c=cid, rc=int(rc.value if hasattr(rc, "value") else rc))
            self._schedule(client)

        def on_message(client, userdata, msg):
            body = json.loads(msg.payload)
            self.h.write("recv", c=cid, p=body["p"], s=body["s"], ts=body["t"], dup=int(msg.dup))

        def on_subscribe(client, userdata, mid, reason_codes, props=None):
            self.subscribed.add(cid)

        c.on_connect, c.on_disconnect = on_connect, on_disconnect
        if topic is not None:
            c.on_message = on_message
            c.on_subscribe = on_subscribe
        else:
            index = int(cid.rsplit("p", 1)[1])

            def on_publish(client, userdata, mid, rc, props=None):
                with self._mid_lock:
                    seq = self._mid.pop((index, mid), None)
                    if seq is None:
                        self._early.add((index, mid))
                if seq is not None:
                    self.h.write("ack", p=cid, s=seq)

            c.on_publish = on_publish
        return c

    def start(self, timeout_s: float = 60, after_subscribers=None) -> float:
        """Connect everyone (subscribers first) and start publishing; seconds it took.
        `after_subscribers()` runs once every subscriber is in, before any publisher connects."""
        start = time.monotonic()
        props = None
        if self.s.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.s.session_expiry_s if self.s.persistent else 0
        self._io_thread.start()
        for group in (self.subs, self.pubs):
            for c in group:
                if props is not None:
                    c.connect_async(self.host, self.port, self.s.keepalive_s,
                                    clean_start=c._client_id.decode().rsplit("-", 1)[1][0] == "p"
                                    or not self.s.persistent, properties=props)
                else:
                    c.connect_async(self.host, self.port, self.s.keepalive_s)
                self._delay[c] = self.s.reconnect_min_s
                with self._sel_lock:
                    self._due[c] = 0.0  # the I/O thread connects it
            self._wait(len(group), group, timeout_s - (time.monotonic() - start))
            if group is self.subs:  # a message sent before its SUBACK would be dropped, not lost
                self._wait(len(group), group, timeout_s - (time.monotonic() - start),
                           self.subscribed)
                time.sleep(1.0)  # and subscriptions reach the other nodes asynchronously
                if after_subscribers is not None:
                    after_subscribers()
        if self.pubs:
            self._publisher_thread = threading.Thread(target=self._publish_loop, daemon=True)
            self._publisher_thread.start()
        return time.monotonic() - start

    def _wait(self, n: int, group: list[mqtt.Client], timeout_s: float,
              done: set[str] | None = None) -> None:
        done = self.connected if done is None else done
        what = "connected" if done is self.connected else "subscribed"
        ids = {c._client_id.decode() for c in group}
        deadline = time.monotonic() + max(timeout_s, 1)
        while len(ids & done) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(ids & done)} of {n} clients {what}")
            time.sleep(0.1)

    def _publish_loop(self) -> None:
        period = 1.0 / self.s.publish_per_s
        nsub = len(self.subs)
        next_t = time.monotonic()
        while not self._stop.is_set():
            for i, c in enumerate(self.pubs):
                seq = self._seq[i]
                self._seq[i] += 1
                t = time.time()
                payload = json.dumps({"p": f"{self.run}-p{i}", "s": seq, "t": t})
                self.h.write("send", p=f"{self.run}-p{i}", s=seq, q=self.s.qos, t=t)
                info = c.publish(f"twin/{self.run}/{i % nsub}", payload, qos=self.s.qos)
                if self.s.qos:
                    with self._mid_lock:
                        acked = (i, info.mid) in self._early
                        if acked:
                            self._early.discard((i, info.mid))
                        else:
                            self._mid[(i, info.mid)] = seq
                    if acked:
                        self.h.write("ack", p=f"{self.run}-p{i}", s=seq)
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop_publishing(self) -> None:
        self._stop.set()
        if self._publisher_thread is not None:
            self._publisher_thread.join(timeout=10)

    # -- the I/O thread -----------------------------------------------------------------------
    def _watch(self, sock, client: mqtt.Client, write: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        with self._sel_lock:
            try:
                self._sel.modify(sock, events, client)
            except KeyError:
                self._sel.register(sock, events, client)

    def _unwatch(self, sock) -> None:
        with self._sel_lock:
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass

    def _schedule(self, client: mqtt.Client) -> None:
        if self._closing.is_set():
            return
        delay = self._delay.get(client, self.s.reconnect_min_s)
        self._delay[client] = min(delay * 2, self.s.reconnect_max_s)
        with self._sel_lock:
            self._due[client] = time.monotonic() + delay

    def _io_loop(self) -> None:
        clients = self.subs + self.pubs
        start = time.monotonic()
        # (when, which): client k checks its timers at start + k/N of a tick, then every tick
        timers = [(start + TIMER_TICK_S * k / len(clients), k) for k in range(len(clients))]
        heapq.heapify(timers)
        while not self._io_done.is_set():
            with self._sel_lock:
                has = bool(self._sel.get_map())
                # wake for the next timer check or reconnect on time: a coarser wake would add
                # its own delay to every timeout and back-off the lab measures
                wake = min(timers[0][0], min(self._due.values(), default=timers[0][0]))
            wait = min(max(wake - time.monotonic(), 0.0), 0.05)
            ready = self._sel.select(timeout=wait) if has else (time.sleep(wait) or [])
            for key, mask in ready:
                client = key.data
                if mask & selectors.EVENT_READ:
                    client.loop_read()
                if mask & selectors.EVENT_WRITE:
                    client.loop_write()
            now = time.monotonic()
            while timers[0][0] <= now:
                when, k = timers[0]
                clients[k].loop_misc()  # keepalive pings, and noticing a silent broker
                heapq.heapreplace(timers, (when + TIMER_TICK_S * (1 + (now - when) // TIMER_TICK_S), k))
            with self._sel_lock:
                due = [c for c, t in self._due.items() if t <= now]
                for c in due:
                    del self._due[c]
            for c in due:
                if self._closing.is_set():
                    break
                self.h.write("attempt", c=c._client_id.decode())
                try:
                    c.reconnect()
                except OSError:  # refused or unreachable: next try after the back-off
                    self.h.write("disconnect", c=c._client_id.decode(), rc=-1)
                    self._schedule(c)

    def stop(self) -> None:
        self.stop_publishing()
        self._closing.set()
        for c in self.pubs + self.subs:
            c.disconnect()
        time.sleep(0.5)  # let the I/O thread flush the DISCONNECTs
        self._io_done.set()
        if self._io_thread.is_alive():
            self._io_thread.join(timeout=10)
