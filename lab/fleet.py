"""The probe fleet: paho-mqtt 2.x devices through the LB, recording what they live through.

Subscribers are persistent (clean session off / session expiry on) and subscribe once; after a
reconnect without `session present` they subscribe again, as a device would. Publishers send
`{"p", "s", "t"}` to one subscriber's topic each at a fixed rate. paho's own reconnect loop is
used (doubling from `reconnect_min_s` to `reconnect_max_s`, no jitter: FACTS.md).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from lab.history import HistoryWriter


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

    def __post_init__(self) -> None:
        if self.subscribers < 1 or self.publishers < 0:
            raise ValueError("clients.subscribers must be >= 1 and clients.publishers >= 0")
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
        self._mid: dict[tuple[int, int], int] = {}  # (publisher, mid) -> seq
        self._mid_lock = threading.Lock()
        self._stop = threading.Event()
        self._publisher_thread: threading.Thread | None = None
        self.connected: set[str] = set()

    def _client(self, cid: str, subscriber: int | None = None) -> mqtt.Client:
        v5 = self.s.protocol == "5"
        kwargs = {"protocol": mqtt.MQTTv5} if v5 else {
            "protocol": mqtt.MQTTv311, "clean_session": subscriber is None}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, **kwargs)
        c.reconnect_delay_set(self.s.reconnect_min_s, self.s.reconnect_max_s)
        topic = f"twin/{self.run}/{subscriber}" if subscriber is not None else None

        def on_connect(client, userdata, flags, rc, props=None):
            sp = bool(flags.session_present)
            self.h.write("connect", c=cid, sp=sp, rc=int(rc.value if hasattr(rc, "value") else rc))
            if not rc.is_failure:
                self.connected.add(cid)
                if topic is not None and not sp:
                    client.subscribe(topic, qos=self.s.qos)

        def on_disconnect(client, userdata, flags, rc, props=None):
            self.connected.discard(cid)
            self.h.write("disconnect", c=cid, rc=int(rc.value if hasattr(rc, "value") else rc))

        def on_message(client, userdata, msg):
            body = json.loads(msg.payload)
            self.h.write("recv", c=cid, p=body["p"], s=body["s"], ts=body["t"], dup=int(msg.dup))

        c.on_connect, c.on_disconnect = on_connect, on_disconnect
        if topic is not None:
            c.on_message = on_message
        else:
            index = int(cid.rsplit("p", 1)[1])

            def on_publish(client, userdata, mid, rc, props=None):
                with self._mid_lock:
                    seq = self._mid.pop((index, mid), None)
                if seq is not None:
                    self.h.write("ack", p=cid, s=seq)

            c.on_publish = on_publish
        return c

    def start(self, timeout_s: float = 60) -> float:
        """Connect everyone (subscribers first) and start publishing; seconds it took."""
        start = time.monotonic()
        props = None
        if self.s.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.s.session_expiry_s
        for group in (self.subs, self.pubs):
            for c in group:
                if props is not None:
                    c.connect_async(self.host, self.port, self.s.keepalive_s,
                                    clean_start=c._client_id.decode().rsplit("-", 1)[1][0] == "p",
                                    properties=props)
                else:
                    c.connect_async(self.host, self.port, self.s.keepalive_s)
                c.loop_start()
            self._wait(len(group), group, timeout_s - (time.monotonic() - start))
        time.sleep(0.5)  # subscriptions settle before the first publish
        if self.pubs:
            self._publisher_thread = threading.Thread(target=self._publish_loop, daemon=True)
            self._publisher_thread.start()
        return time.monotonic() - start

    def _wait(self, n: int, group: list[mqtt.Client], timeout_s: float) -> None:
        ids = {c._client_id.decode() for c in group}
        deadline = time.monotonic() + max(timeout_s, 1)
        while len(ids & self.connected) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(ids & self.connected)} of {n} clients connected")
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
                with self._mid_lock:
                    info = c.publish(f"twin/{self.run}/{i % nsub}", payload, qos=self.s.qos)
                    if self.s.qos:
                        self._mid[(i, info.mid)] = seq
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop_publishing(self) -> None:
        self._stop.set()
        if self._publisher_thread is not None:
            self._publisher_thread.join(timeout=10)

    def stop(self) -> None:
        self.stop_publishing()
        for c in self.pubs + self.subs:
            c.disconnect()
        for c in self.pubs + self.subs:
            c.loop_stop()
