"""Cluster control: bring the lab up and down, and reach its containers - only the lab's own.

Every container call goes through `Lab.container()`, which refuses any container that does not
carry the lab's compose project label. Compose itself has no Python SDK, so `up`/`down` run
docker-compose; everything else uses the docker SDK.
"""

from __future__ import annotations

import csv
import io
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

from lab.brokers import NO_EMQX_IMAGE, Adapter, DurableStorage, adapter, get_json
from lab.lbconfig import Backend, LBSettings, haproxy_cfg

PROJECT = "mqtt-ha-twin-lab"
PROJECT_LABEL = "com.docker.compose.project"
ROOT = Path(__file__).resolve().parent.parent
REGION_A = ("emqx-a1", "emqx-a2", "emqx-a3")
REGION_B = ("emqx-b1", "emqx-b2")


BROKER_FILE = ROOT / "lab" / "generated" / "broker"  # which broker the last `twin lab up` ran


def last_broker() -> str | None:
    return BROKER_FILE.read_text().strip() if BROKER_FILE.exists() else None


class LabError(RuntimeError):
    """Something about the lab the user must fix; one line."""


@dataclass(frozen=True)
class LabConfig:
    broker: str = "emqx-local"  # lab/brokers.py BROKERS
    sessions: str = "memory"  # EMQX: durable_sessions off (memory) or on; stand-in: stream replicas
    lb: LBSettings = field(default_factory=LBSettings)
    profiles: tuple[str, ...] = ()
    mqtt_port: int = 18830
    stats_port: int = 18404
    dist_net_ticktime_s: int = 120  # EMQX node.dist_net_ticktime (its default: 2 min)
    image: str | None = None  # EMQX only: any image by name (else EMQX_IMAGE, else the broker's)
    durable_storage: DurableStorage = field(default_factory=DurableStorage)  # EMQX, durable only

    def __post_init__(self) -> None:
        if self.image and not self.adapter.is_emqx:
            raise LabError(f"image = {self.image!r}: only for an EMQX broker (emqx-local, emqx), "
                           f"not {self.broker}")

    @property
    def adapter(self) -> Adapter:
        return adapter(self.broker)

    @property
    def standin(self) -> bool:
        return self.broker == "standin"

    def broker_version(self) -> str:
        return self.adapter.version(self.image)

    def emqx_env(self) -> dict[str, str]:
        """EMQX settings passed through to every node (docker-compose.lab.yml lists them)."""
        if not (self.adapter.is_emqx and self.sessions == "durable"):
            return {}
        return self.durable_storage.env()


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
        return client
    except Exception as err:  # the SDK raises several kinds; all mean "no engine here"
        raise LabError(f"no Docker engine reachable ({type(err).__name__}); start dockerd") from None


def _last_error(c: Container) -> str:
    """The container's last error line (EMQX refuses bad configuration at boot, e.g. durable
    sessions in a cluster of the open-source build), else its last line."""
    lines = c.logs(tail=40).decode(errors="replace").strip().splitlines() or ["(no output)"]
    errors = [ln for ln in lines if "error" in ln.lower() and "call_hocon_failed" not in ln]
    return (errors or lines)[-1].strip()[:400]


class Lab:
    def __init__(self, config: LabConfig, root: Path = ROOT) -> None:
        self.config, self.root = config, root
        self.docker = docker_client()
        self.generated = root / "lab" / "generated"

    # -- compose -----------------------------------------------------------------------------
    def _compose_files(self) -> list[str]:
        files = ["-f", str(self.root / "docker-compose.lab.yml")]
        for extra in self.config.adapter.compose_overrides:
            files += ["-f", str(self.root / extra)]
        return files

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        exe = shutil.which("docker-compose")
        base = [exe] if exe else ["docker", "compose"]
        profiles = [a for p in self.config.profiles for a in ("--profile", p)]
        env = {**os.environ, **self.config.adapter.compose_env(self.config.image),
               **self.config.emqx_env(),
               "LAB_MQTT_PORT_A": str(self.config.mqtt_port),
               "LAB_STATS_PORT_A": str(self.config.stats_port),
               "EMQX_DURABLE_SESSIONS": str(self.config.sessions == "durable").lower(),
               "EMQX_DIST_NET_TICKTIME": f"{self.config.dist_net_ticktime_s}s"}
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
        a = self.config.adapter
        for region, names in (("a", REGION_A), ("b", REGION_B)):
            backends = tuple(Backend(n, 1883, a.health_port, a.health_path) for n in names)
            lb = LBSettings(**{**self.config.lb.__dict__, "backends": backends})
            (self.generated / f"haproxy-{region}.cfg").write_text(haproxy_cfg(lb))
        a.write_generated(self.generated, REGION_A, self.config.sessions, REGION_B)

    def check_images(self) -> None:
        """Refuse to start when a locally built image is missing (compose would try to pull)."""
        a = self.config.adapter
        for image in a.required_images(self.config.profiles, self.config.image):
            try:
                self.docker.images.get(image)
            except docker.errors.ImageNotFound:
                how = (NO_EMQX_IMAGE if image == a.emqx_image(self.config.image)
                       else "build it with `bash lab/images/build.sh`")
                raise LabError(f"broker = {self.config.broker}: image {image} is missing; {how}") from None

    def up(self, timeout_s: float = 180) -> None:
        self.check_images()
        self.write_generated()
        (self.generated / BROKER_FILE.name).write_text(self.config.broker + "\n")
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
            if all(s in ("healthy", "running") for s in states.values()) and self._lb_ready() \
                    and self.cluster_formed():
                return time.monotonic() - start
            for c in self.containers():
                if c.status == "exited" and c.labels.get("mqtt-ha-twin.role") in ("lb", "broker"):
                    raise LabError(f"{c.name} exited: {_last_error(c)}")
            if time.monotonic() - start > timeout_s:
                raise LabError(f"lab not healthy after {timeout_s:.0f} s: {states}")
            time.sleep(1)

    def cluster_formed(self) -> bool:
        """Every broker sees every broker running (EMQX): a node that joins late restarts its
        applications and drops the clients it already had, which a run must not measure."""
        a = self.config.adapter
        path = a.cluster_path()
        if path is None:
            return True
        brokers = set(self.brokers())
        try:
            return all(a.running_members(get_json(url, self.api_auth())) >= brokers
                       for url in self.broker_urls(path).values())
        except (OSError, ValueError):
            return False

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

    def broker_urls(self, path: str, exclude: str = "") -> dict[str, str]:
        """Each running broker's API `path` on its container address (reached from this host, so
        polling costs no `docker exec`)."""
        return {name: self.config.adapter.api_url(ip, path)
                for name, ip in self.broker_ips().items() if name != exclude}

    def lb_ip(self, service: str = "lb-a") -> str:
        return self._ips([service])[service]

    def broker_ips(self) -> dict[str, str]:
        """Each running broker's container address (the load lab connects to them directly)."""
        return self._ips(self.brokers())

    def _ips(self, services: list[str]) -> dict[str, str]:
        out = {}
        for name in services:
            c = self.container(name)
            c.reload()
            ips = [n["IPAddress"] for n in c.attrs["NetworkSettings"]["Networks"].values()
                   if n.get("IPAddress")]
            if c.status == "running" and ips:
                out[name] = ips[0]
        return out

    def node_limits(self) -> dict[str, dict[str, float | None]]:
        """Each broker's CPU and memory limit (None: the host's, which the node shares)."""
        out = {}
        for name in self.brokers():
            hc = self.container(name).attrs["HostConfig"]
            out[name] = {"cpus": hc.get("NanoCpus", 0) / 1e9 or None,
                         "memory_bytes": hc.get("Memory", 0) or None,
                         "host_cpus": os.cpu_count(),
                         "host_memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")}
        return out

    def api_auth(self) -> str | None:
        a = self.config.adapter
        return a.api_auth(self.generated) if a.is_emqx else None

    def roles(self) -> dict[str, str]:
        """Who leads what in the cluster right now (stand-in: JetStream meta and stream leaders,
        which decide how long a node's loss blocks new sessions); {} for EMQX, which has none."""
        a = self.config.adapter
        path = a.roles_path()
        for url in self.broker_urls(path).values() if path else ():
            try:
                return a.roles_of(get_json(url, self.api_auth()))
            except (OSError, ValueError):
                continue
        return {}

    def roles_urls(self, exclude: str = "") -> dict[str, str]:
        path = self.config.adapter.roles_path()
        return self.broker_urls(path, exclude) if path else {}

    def placement(self) -> dict[str, str]:
        """Which node each MQTT client is connected to (and so holds its session), from the
        brokers themselves: NATS /connz per node, EMQX /api/v5/clients for the whole cluster."""
        a = self.config.adapter
        out: dict[str, str] = {}
        for name, url in self.broker_urls(a.placement_path()).items():
            try:
                out.update(a.placement_of(name, get_json(url, self.api_auth(), timeout_s=5)))
            except (OSError, ValueError):
                continue
            if a.is_emqx and out:
                break  # any EMQX node answers for the cluster
        return out

    def endpoint(self) -> tuple[str, int]:
        return "127.0.0.1", self.config.mqtt_port
