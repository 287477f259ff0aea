"""Broker adapters: what the harness must know about the broker under the LB, in one place.

The same compose services, faults, fleet and checker run on every broker; an adapter says which
images and compose files to use, how the LB probes a node, which node holds which client, and who
leads what in the cluster (the NATS stand-in's JetStream leaders; EMQX has no leader per session).

* `emqx-local` - EMQX packed here from an official release tarball (lab/images/build.sh TARBALL),
                 HAProxy from Debian
* `emqx`       - the Docker Hub images (emqx/emqx:5.8.9, haproxy): the same compose file
* `standin`    - a NATS cluster (JetStream-backed MQTT) from the same local base image: a second
                 broker, held out from the EMQX calibration; what CI runs
Either EMQX broker takes any image by name (`--image`, or EMQX_IMAGE), Enterprise included.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BROKERS = ("emqx-local", "emqx", "standin")
BASE_IMAGE = "mqtt-ha-twin/base:bookworm"
EMQX_LOCAL_IMAGE = "mqtt-ha-twin/emqx:5.8.9-local"
EMQX_HUB_IMAGE = "emqx/emqx:5.8.9"
PROMETHEUS_LOCAL_IMAGE = "mqtt-ha-twin/prometheus:local"
API_KEY_FILE = "emqx-api-key.txt"  # lab/generated/: EMQX's api_key.bootstrap_file (key:secret:role)
NATS_ROLES_PATH = "/jsz?accounts=true&streams=true"
EMQX_SESSIONS_ROLE = "sessions@"  # + node: who holds that node's sessions (see roles_of)
SESSION_STORE_ROLE = "$MQTT_sess"  # the stand-in's session store (a JetStream stream)
NO_SESSION_FACTS = {"owner_failed": None, "released_s": None, "released_by": None}  # not seen
# EMQX's durable-storage databases whose settings the lab passes through (5.8.9 config paths
# durable_storage.<db>.backend / n_sites / replication_factor; builtin_raft is Enterprise-only).
EMQX_DS_DATABASES = ("messages", "queues")
NO_EMQX_IMAGE = ("no EMQX image: `--broker emqx` pulls emqx/emqx:5.8.9 from Docker Hub; "
                 "`lab/images/build.sh TARBALL` packs an official release; `--broker standin` runs NATS")


@dataclass(frozen=True)
class DurableStorage:
    """EMQX durable-storage settings, passed to every node as EMQX_DURABLE_STORAGE__* (None: EMQX's
    default: builtin_local in the open-source build, builtin_raft with 3 replicas in Enterprise)."""
    backend: str | None = None  # builtin_local | builtin_raft
    n_sites: int | None = None
    replication_factor: int | None = None

    def env(self) -> dict[str, str]:
        values = {"BACKEND": self.backend, "N_SITES": self.n_sites,
                  "REPLICATION_FACTOR": self.replication_factor}
        return {f"EMQX_DURABLE_STORAGE__{db.upper()}__{k}": str(v)
                for db in EMQX_DS_DATABASES for k, v in values.items() if v is not None}


def nats_roles_of(jsz: dict) -> dict[str, str]:
    """Leaders from a NATS /jsz answer: the JetStream meta leader and each stream's ("" if none)."""
    roles = {"meta": jsz.get("meta_cluster", {}).get("leader", "")}
    for acc in jsz.get("account_details") or []:
        for st in acc.get("stream_detail") or []:
            roles[st["name"]] = (st.get("cluster") or {}).get("leader", "")
    return roles


@dataclass(frozen=True)
class Adapter:
    name: str
    health_port: int
    health_path: str
    compose_overrides: tuple[str, ...] = ()

    @property
    def is_emqx(self) -> bool:
        return self.name.startswith("emqx")

    def emqx_image(self, image: str | None = None) -> str | None:
        """The EMQX image this broker runs: `image`, else EMQX_IMAGE, else the broker's default."""
        if not self.is_emqx:
            return None
        default = EMQX_LOCAL_IMAGE if self.name == "emqx-local" else EMQX_HUB_IMAGE
        return image or os.environ.get("EMQX_IMAGE") or default

    def version(self, image: str | None = None) -> str:
        if self.name == "standin":
            return "nats-server 2.9 (Debian bookworm), stand-in, not EMQX"
        return str(self.emqx_image(image))

    def compose_env(self, image: str | None = None) -> dict[str, str]:
        """Image variables of docker-compose.lab.yml; a user's own HAPROXY_IMAGE etc. win."""
        env: dict[str, str] = {}
        if self.name != "emqx":  # emqx: Docker Hub's haproxy and netshoot, as compose says
            env = {k: os.environ.get(k, v) for k, v in (
                ("HAPROXY_IMAGE", BASE_IMAGE), ("NETTOOLS_IMAGE", BASE_IMAGE),
                ("STANDIN_IMAGE", BASE_IMAGE), ("PROMETHEUS_IMAGE", PROMETHEUS_LOCAL_IMAGE))}
        emqx = self.emqx_image(image)
        if emqx:
            env["EMQX_IMAGE"] = emqx
        return env

    def required_images(self, profiles: tuple[str, ...] = (), image: str | None = None) -> list[str]:
        """The images this broker's lab needs on this machine before compose starts (`emqx`
        leaves them to compose, which pulls them from Docker Hub)."""
        if self.name == "emqx":
            return []
        env = self.compose_env(image)
        keys = ["EMQX_IMAGE", "HAPROXY_IMAGE", "STANDIN_IMAGE"]
        keys += ["PROMETHEUS_IMAGE"] if "monitoring" in profiles else []
        return sorted({env[k] for k in keys if k in env})

    # -- generated files -------------------------------------------------------------------
    def write_generated(self, generated: Path, nodes: tuple[str, ...], sessions: str,
                        extra_nodes: tuple[str, ...] = ()) -> None:
        """`extra_nodes` (region B) route to every node; `nodes` only to each other, so that a
        lab without region B is the 3-node cluster the stand-in was calibrated on."""
        if self.name == "standin":
            replicas = 3 if sessions == "durable" else 1
            for name in nodes + extra_nodes:
                peers = nodes + extra_nodes if name in extra_nodes else nodes
                routes = ", ".join(f"nats-route://{n}:6222" for n in peers if n != name)
                (generated / f"nats-{name}.conf").write_text(
                    f'server_name: "{name}"\nlisten: "0.0.0.0:4222"\nhttp: "0.0.0.0:8222"\n'
                    f'jetstream {{ store_dir: "/data/js" }}\n'
                    f'cluster {{ name: "lab", listen: "0.0.0.0:6222", routes: [{routes}] }}\n'
                    f'mqtt {{ listen: "0.0.0.0:1883", stream_replicas: {replicas}, '
                    f'consumer_replicas: {replicas}, ack_wait: "5s" }}\n')
            return
        # EMQX's REST API key, provisioned at boot from its bootstrap file; fresh per lab, never
        # committed (lab/generated is ignored). Readable by the official image's emqx user.
        keyfile = generated / API_KEY_FILE
        if not keyfile.exists():
            keyfile.write_text(f"twin-lab:{secrets.token_urlsafe(24)}:administrator\n")
        keyfile.chmod(0o644)

    def api_auth(self, generated: Path) -> str:
        key, secret = (generated / API_KEY_FILE).read_text().strip().split(":")[:2]
        return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()

    # -- what the brokers say ---------------------------------------------------------------
    def api_url(self, ip: str, path: str) -> str:
        port = 8222 if self.name == "standin" else 18083
        return f"http://{ip}:{port}{path}"

    def placement_path(self) -> str:
        return "/connz?limit=100000" if self.name == "standin" else "/api/v5/clients?limit=10000"


    def placement_of(self, node: str, answer: dict[str, Any]) -> dict[str, str]:
        """client id -> compose service. NATS answers for itself; EMQX for the whole cluster
        (`node` is the Erlang node name, emqx@<service>.lab.local)."""
        if self.name == "standin":
            return {c["mqtt_client"]: node for c in answer.get("connections") or []
                    if c.get("mqtt_client")}
        return {c["clientid"]: c["node"].split("@", 1)[1].split(".", 1)[0]
                for c in answer.get("data") or [] if c.get("connected")}

    def cluster_path(self) -> str | None:
        """Where a node lists the cluster's members as it sees them (EMQX); None: not asked."""
        return "/api/v5/nodes" if self.is_emqx else None

    def running_members(self, answer: Any) -> set[str]:
        """Compose services a node's /api/v5/nodes answer reports running."""
        return {n["node"].split("@", 1)[1].split(".", 1)[0] for n in answer
                if n.get("node_status") == "running"}

    def roles_path(self) -> str | None:
        """Where a broker says who holds the sessions: NATS's JetStream leaders; EMQX's members."""
        return NATS_ROLES_PATH if self.name == "standin" else self.cluster_path()

    @property
    def counts_mqtt_messages(self) -> bool:
        """Whether the node's message counters are its MQTT clients' messages: EMQX's are; NATS's
        /varz counts its internal ones (JetStream's API) and not MQTT deliveries, so the load lab
        takes the stand-in's message rates from the generator instead."""
        return self.is_emqx

    def counter_paths(self) -> list[str]:
        """Where a node reports its own load counters (the load lab polls them once a second)."""
        if self.name == "standin":
            return ["/varz"]
        return ["/api/v5/stats?aggregate=false", "/api/v5/metrics?aggregate=false",
                "/api/v5/alarms?activated=true"]

    def counters_of(self, node: str, answers: list[Any]) -> dict[str, Any]:
        """Broker-neutral counters of one node: connections, subscriptions, messages in / out
        (cumulative), dropped and dropped because a session's queue was full, alarms raised.
        NATS /varz counts its own subscriptions and internal messages too (JetStream's API)."""
        if self.name == "standin":
            [v] = answers
            return {"connections": v.get("connections", 0), "subscriptions": v.get("subscriptions", 0),
                    "msgs_in": v.get("in_msgs", 0), "msgs_out": v.get("out_msgs", 0),
                    "dropped": v.get("slow_consumers", 0), "dropped_queue_full": None, "alarms": []}
        stats, metrics, alarms = answers

        def own(answer: Any) -> dict[str, Any]:  # EMQX answers per node with aggregate=false
            rows = answer if isinstance(answer, list) else [answer]
            mine = [r for r in rows if str(r.get("node", "")).split("@")[-1].split(".")[0] == node]
            return (mine or rows or [{}])[0]

        st, me = own(stats), own(metrics)
        return {"connections": st.get("connections.count", 0),
                "subscriptions": st.get("subscriptions.count", 0),
                "sessions": st.get("sessions.count"),
                "msgs_in": me.get("messages.received", 0), "msgs_out": me.get("messages.sent", 0),
                "dropped": me.get("messages.dropped", 0),
                "dropped_queue_full": me.get("delivery.dropped.queue_full", 0),
                "alarms": sorted({a.get("name", "") for a in (alarms or {}).get("data", [])
                                  if str(a.get("node", "")).split("@")[-1].split(".")[0] == node})}

    def roles_of(self, answer: Any) -> dict[str, str]:
        """NATS: the JetStream leaders. EMQX: a session lives on its client's node, and a survivor
        that must take it over from a silent node waits for it (FACTS: kick/takeover RPC) until
        the Erlang distribution declares that node down; so `sessions@<node>` is held by the
        node while the cluster counts it running and "released" once a survivor reports it
        stopped (a node the answer does not list is not reported)."""
        if self.name == "standin":
            return nats_roles_of(answer)
        out = {}
        for n in answer:
            svc = n["node"].split("@", 1)[1].split(".", 1)[0]
            out[f"{EMQX_SESSIONS_ROLE}{svc}"] = svc if n.get("node_status") == "running" \
                else "released"
        return out

    def session_facts(self, origin: dict[str, Any], target: str) -> dict[str, Any]:
        """Broker-neutral facts about the failed node's clients' sessions (lab/SCHEMA.md
        `origin.sessions`), from the roles this adapter read: did the failed node own them, when
        could a survivor open them, and what released them (`election`: a replicated store
        elects a new leader, the stand-in's JetStream stream; `failure_detector`: they stay on
        their node until the cluster counts it down, EMQX)."""
        role = SESSION_STORE_ROLE if self.name == "standin" else EMQX_SESSIONS_ROLE + target
        return session_facts_of(origin, target, role, "election" if self.name == "standin"
                                else "failure_detector")


def session_facts_of(origin: dict[str, Any], target: str, role: str, released_by: str
                     ) -> dict[str, Any]:
    roles = origin.get("roles") or {}
    if role not in roles:  # the lab did not see who held them
        return dict(NO_SESSION_FACTS)
    return {"owner_failed": roles[role] == target,
            "released_s": (origin.get("roles_elected_s") or {}).get(role),
            "released_by": released_by}


ADAPTERS = {
    "emqx-local": Adapter("emqx-local", 18083, "/api/v5/status"),
    "emqx": Adapter("emqx", 18083, "/api/v5/status"),
    # Node-local liveness, like EMQX's /api/v5/status: NATS's plain /healthz also fails while
    # JetStream elects a leader, which would take every survivor out of rotation at once.
    "standin": Adapter("standin", 8222, "/healthz?js-enabled-only=true",
                       ("lab/standin/docker-compose.standin.yml",)),
}


def adapter(name: str) -> Adapter:
    if name not in ADAPTERS:
        raise ValueError(f"broker = {name!r}: allowed {', '.join(BROKERS)}")
    return ADAPTERS[name]


def get_json(url: str, auth: str | None = None, timeout_s: float = 2.0) -> Any:
    """One GET to a lab container's API (lab addresses only)."""
    req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read())
