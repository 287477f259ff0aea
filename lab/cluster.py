"""Cluster control: bring the lab up and down, and reach its containers - only the lab's own.

Every container call goes through `Lab.container()`, which refuses any container that does not
carry the lab's compose project label. Compose itself has no Python SDK, so `up`/`down` run
docker-compose; everything else uses the docker SDK.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.models.containers import Container

from lab.lbconfig import Backend, LBSettings, haproxy_cfg

PROJECT = "mqtt-ha-twin-lab"
PROJECT_LABEL = "com.docker.compose.project"
ROOT = Path(__file__).resolve().parent.parent
REGION_A = ("emqx-a1", "emqx-a2", "emqx-a3")
REGION_B = ("emqx-b1", "emqx-b2")


class LabError(RuntimeError):
    """Something about the lab the user must fix; one line."""


@dataclass(frozen=True)
class LabConfig:
    standin: bool = False  # CI: NATS cluster from a locally built image in place of EMQX
    sessions: str = "durable"  # stand-in: stream replicas 3 (durable) or 1 (node-local, "memory")
    lb: LBSettings = field(default_factory=LBSettings)
    profiles: tuple[str, ...] = ()
    mqtt_port: int = 18830
    stats_port: int = 18404

    def broker_version(self) -> str:
        if self.standin:
            return "nats-server 2.9 (Debian bookworm), stand-in, not EMQX"
        return os.environ.get("EMQX_IMAGE", "emqx/emqx:5.8.9")


ROLES_PATH = "/jsz?accounts=true&streams=true"


def roles_of(jsz: dict) -> dict[str, str]:
    """Leaders from a NATS /jsz answer: the JetStream meta leader and each stream's ("" if none)."""
    roles = {"meta": jsz.get("meta_cluster", {}).get("leader", "")}
    for acc in jsz.get("account_details") or []:
        for st in acc.get("stream_detail") or []:
            roles[st["name"]] = (st.get("cluster") or {}).get("leader", "")
    return roles


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as err:  # the SDK raises several kinds; all mean "no engine here"
        raise LabError(f"no Docker engine reachable ({type(err).__name__}); start dockerd") from None


class Lab:
    def __init__(self, config: LabConfig, root: Path = ROOT) -> None:
        self.config, self.root = config, root
        self.docker = docker_client()
        self.generated = root / "lab" / "generated"

    # -- compose -----------------------------------------------------------------------------
    def _compose_files(self) -> list[str]:
        files = ["-f", str(self.root / "docker-compose.lab.yml")]
        if self.config.standin:
            files += ["-f", str(self.root / "lab" / "standin" / "docker-compose.standin.yml")]
        return files

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        exe = shutil.which("docker-compose")
        base = [exe] if exe else ["docker", "compose"]
        profiles = [a for p in self.config.profiles for a in ("--profile", p)]
        env = {**os.environ, "LAB_MQTT_PORT_A": str(self.config.mqtt_port),
               "LAB_STATS_PORT_A": str(self.config.stats_port)}
        cmd = [*base, "-p", PROJECT, "--project-directory", str(self.root),
               *self._compose_files(), *profiles, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if check and result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["(no output)"]
            last = next((ln for ln in reversed(lines) if "error" in ln.lower() and "Encountered" not in ln),
                        lines[-1])
            raise LabError(f"docker-compose {' '.join(args)} failed: {last}")
        return result

    def write_generated(self) -> None:
        """`.env` with fresh secrets (only when missing) and the LB / stand-in configs."""
        env = self.root / ".env"
        if not env.exists():
            env.write_text(f"EMQX_NODE__COOKIE={secrets.token_urlsafe(24)}\n"
                           f"EMQX_DASHBOARD_PASSWORD={secrets.token_urlsafe(18)}\n")
            env.chmod(0o600)
        self.generated.mkdir(parents=True, exist_ok=True)
        # Node-local liveness, like EMQX's /api/v5/status: NATS's plain /healthz also fails while
        # JetStream elects a leader, which would take every survivor out of rotation at once.
        health = (8222, "/healthz?js-enabled-only=true") if self.config.standin \
            else (18083, "/api/v5/status")
        for region, names in (("a", REGION_A), ("b", REGION_B)):
            backends = tuple(Backend(n, 1883, *health) for n in names)
            lb = LBSettings(**{**self.config.lb.__dict__, "backends": backends})
            (self.generated / f"haproxy-{region}.cfg").write_text(haproxy_cfg(lb))
        replicas = 3 if self.config.sessions == "durable" else 1
        for name in REGION_A:
            routes = ", ".join(f"nats-route://{n}:6222" for n in REGION_A if n != name)
            (self.generated / f"nats-{name}.conf").write_text(
                f'server_name: "{name}"\nlisten: "0.0.0.0:4222"\nhttp: "0.0.0.0:8222"\n'
                f'jetstream {{ store_dir: "/data/js" }}\n'
                f'cluster {{ name: "lab", listen: "0.0.0.0:6222", routes: [{routes}] }}\n'
                f'mqtt {{ listen: "0.0.0.0:1883", stream_replicas: {replicas}, '
                f'consumer_replicas: {replicas}, ack_wait: "5s" }}\n')

    def up(self, timeout_s: float = 180) -> None:
        self.write_generated()
        self.compose("up", "-d", "--force-recreate", "--remove-orphans")
        self.wait_healthy(timeout_s)

    def down(self) -> None:
        for c in self.containers():  # a fault may have left one paused; compose cannot stop it
            if c.status == "paused":
                c.unpause()
        self.compose("down", "-v", "--remove-orphans", check=False)

    # -- containers --------------------------------------------------------------------------
    def containers(self, role: str | None = None) -> list[Container]:
        labels = [f"{PROJECT_LABEL}={PROJECT}"] + ([f"mqtt-ha-twin.role={role}"] if role else [])
        return self.docker.containers.list(all=True, filters={"label": labels})

    def container(self, service: str) -> Container:
        for c in self.containers():
            if c.labels.get("com.docker.compose.service") == service:
                return c
        raise LabError(f"{service}: no such container in the lab (project {PROJECT})")

    def guard(self, c: Container) -> Container:
        """Refuse a container that is not the lab's own."""
        if c.labels.get(PROJECT_LABEL) != PROJECT:
            raise LabError(f"{c.name}: not a lab container (label {PROJECT_LABEL} != {PROJECT})")
        return c

    def brokers(self) -> list[str]:
        return sorted(c.labels["com.docker.compose.service"] for c in self.containers("broker"))

    def wait_healthy(self, timeout_s: float = 180, services: list[str] | None = None) -> float:
        """Wait until every broker (or the named services) reports healthy; seconds waited."""
        start = time.monotonic()
        names = services or self.brokers()
        while True:
            states = {}
            for name in names:
                c = self.container(name)
                c.reload()
                states[name] = c.attrs["State"].get("Health", {}).get("Status", c.status)
            if all(s in ("healthy", "running") for s in states.values()) and self._lb_ready():
                return time.monotonic() - start
            for c in self.containers():
                if c.status == "exited" and c.labels.get("mqtt-ha-twin.role") == "lb":
                    last = c.logs(tail=1).decode(errors="replace").strip()
                    raise LabError(f"{c.name} exited: {last}")
            if time.monotonic() - start > timeout_s:
                raise LabError(f"lab not healthy after {timeout_s:.0f} s: {states}")
            time.sleep(1)

    def _lb_ready(self) -> bool:
        try:
            return sum(r["status"].startswith("UP") for r in self.lb_stats()) > 0
        except OSError:
            return False

    def lb_stats(self) -> list[dict[str, str]]:
        """HAProxy's view of the backends (name, status, current sessions)."""
        url = f"http://127.0.0.1:{self.config.stats_port}/stats;csv"
        with urllib.request.urlopen(url, timeout=3) as resp:  # loopback only
            text = resp.read().decode().lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return [{"name": r["svname"], "status": r["status"], "sessions": r["scur"]}
                for r in rows if r["pxname"] == "brokers" and r["svname"] not in ("BACKEND",)]

    def _monitor(self, path: str):
        """(broker, JSON) from each running stand-in broker's NATS monitoring endpoint `path`."""
        for name in self.brokers():
            c = self.container(name)
            if c.status != "running":
                continue
            code, out = c.exec_run(["curl", "-fsS", "--max-time", "2", f"http://127.0.0.1:8222{path}"])
            if code == 0:
                yield name, json.loads(out)

    def roles(self) -> dict[str, str]:
        """Who leads what in the cluster right now (stand-in: JetStream meta and stream leaders,
        which decide how long a node's loss blocks new sessions); {} where not known."""
        if not self.config.standin:
            return {}
        for _name, data in self._monitor(ROLES_PATH):
            return roles_of(data)
        return {}

    def monitor_urls(self, path: str = ROLES_PATH) -> dict[str, str]:
        """The stand-in brokers' monitoring URLs on their container addresses (reached from this
        host, so polling them costs no `docker exec`); {} for EMQX."""
        if not self.config.standin:
            return {}
        urls = {}
        for name in self.brokers():
            c = self.container(name)
            c.reload()
            ips = [n["IPAddress"] for n in c.attrs["NetworkSettings"]["Networks"].values()
                   if n.get("IPAddress")]
            if ips:
                urls[name] = f"http://{ips[0]}:8222{path}"
        return urls

    def placement(self) -> dict[str, str]:
        """Which node each MQTT client is connected to, from the brokers themselves (stand-in:
        NATS /connz); {} where not known (EMQX would need its REST API credentials)."""
        if not self.config.standin:
            return {}
        return {conn["mqtt_client"]: name for name, data in self._monitor("/connz?limit=100000")
                for conn in data.get("connections") or [] if conn.get("mqtt_client")}

    def endpoint(self) -> tuple[str, int]:
        return "127.0.0.1", self.config.mqtt_port
