"""HAProxy configuration generated from LB settings: HAProxy stands in for the Azure load balancer.

Azure LB facts (FACTS.md): no least-connections mode (5-tuple hash or client-IP affinity), TCP or
HTTP probes, and established flows to a backend that fails its probe continue. HAProxy can do all
of that plus least connections and an MQTT CONNECT/CONNACK probe, so the lab can compare them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ALGORITHMS = {"least_connections": "leastconn", "source_ip": "source", "round_robin": "roundrobin",
              "five_tuple": "roundrobin"}  # HAProxy has no 5-tuple hash; per-connection spread
# MQTT 3.1.1 CONNECT (clean session, keepalive 60 s, client id "lbprobe") and the CONNACK accepted.
MQTT_CONNECT_HEX = "101300044d5154540402003c00076c6270726f6265"
MQTT_CONNACK_HEX = "20020000"


@dataclass(frozen=True)
class Backend:
    name: str  # compose service name, also its DNS name on the region network
    mqtt_port: int = 1883
    health_port: int = 18083  # EMQX dashboard/API; the stand-in uses NATS's monitor port
    health_path: str = "/api/v5/status"


@dataclass(frozen=True)
class LBSettings:
    algorithm: Literal["least_connections", "source_ip", "round_robin", "five_tuple"] = \
        "least_connections"
    probe: Literal["tcp", "http", "mqtt"] = "tcp"
    interval_s: float = 5.0
    fall: int = 1
    rise: int = 2
    on_down: Literal["continue", "reset"] = "continue"
    client_timeout_s: int = 90  # above keepalive x 1.2 (EMQX's HAProxy guide)
    maxconn: int = 4000  # two descriptors each: the container's 20,000 allow about 9,500
    backends: tuple[Backend, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"lb.algorithm = {self.algorithm!r}: allowed {', '.join(ALGORITHMS)}")
        if self.probe not in ("tcp", "http", "mqtt"):
            raise ValueError(f"lb.probe = {self.probe!r}: allowed tcp, http, mqtt")
        if self.on_down not in ("continue", "reset"):
            raise ValueError(f"lb.on_down = {self.on_down!r}: allowed continue, reset")
        if self.interval_s <= 0 or self.fall < 1 or self.rise < 1:
            raise ValueError("lb.interval_s must be > 0 and lb.fall, lb.rise >= 1")


def haproxy_cfg(s: LBSettings) -> str:
    inter = f"{int(s.interval_s * 1000)}ms"
    lines = [
        "global",
        "  log stdout format raw local0 info",
        f"  maxconn {s.maxconn}",
        "  stats socket ipv4@0.0.0.0:9999 level admin",
        "defaults",
        "  mode tcp",
        "  log global",
        "  timeout connect 5s",
        f"  timeout client {s.client_timeout_s}s",
        f"  timeout server {s.client_timeout_s}s",
        "frontend stats",
        "  mode http",
        "  bind 0.0.0.0:8404",
        "  stats enable",
        "  stats uri /stats",
        "frontend mqtt",
        "  bind 0.0.0.0:1883",
        f"  maxconn {s.maxconn}",
        "  default_backend brokers",
        "backend brokers",
        f"  balance {ALGORITHMS[s.algorithm]}",
    ]
    if s.algorithm == "source_ip":
        lines.append("  hash-type consistent")
    check_port = ""
    if s.probe == "http":
        lines += ["  option httpchk", f"  http-check send meth GET uri {s.backends[0].health_path}"
                  if s.backends else "", "  http-check expect status 200"]
    elif s.probe == "mqtt":
        lines += ["  option tcp-check", "  tcp-check connect",
                  f"  tcp-check send-binary {MQTT_CONNECT_HEX}",
                  f"  tcp-check expect binary {MQTT_CONNACK_HEX}"]
    on_down = " on-marked-down shutdown-sessions" if s.on_down == "reset" else ""
    for b in s.backends:
        check_port = f" port {b.health_port}" if s.probe == "http" else ""
        lines.append(f"  server {b.name} {b.name}:{b.mqtt_port} check inter {inter} "
                     f"fall {s.fall} rise {s.rise}{check_port}{on_down} resolvers docker "
                     f"init-addr last,libc,none")
    lines += ["resolvers docker", "  nameserver dns 127.0.0.11:53", "  hold valid 1s", ""]
    return "\n".join(line for line in lines if line != "") + "\n"
