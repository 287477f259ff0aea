"""Faults (the nemesis): each one is undone in `finally`, on Ctrl-C and on SIGTERM.

`FaultGuard` keeps the faults in force and undoes them in reverse order however the run ends;
`heal()` repairs what a killed harness (SIGKILL) may have left: paused containers, cut networks,
WAN rules.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from docker.errors import APIError, NotFound

from lab.cluster import PROJECT, REGION_A, Lab, LabError

FAULTS = ("kill", "pause", "stop", "partition", "lb_loss", "region_loss", "rolling_restart", "wan")


@dataclass
class Fault:
    what: str
    target: str
    undo: Callable[[], None]
    done: bool = False


@dataclass
class FaultGuard:
    lab: Lab
    active: list[Fault] = field(default_factory=list)

    def __enter__(self) -> FaultGuard:
        self._old = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.undo_all()
        finally:
            signal.signal(signal.SIGTERM, self._old)

    def undo_all(self) -> None:
        errors = []
        for f in reversed(self.active):
            if not f.done:
                try:
                    f.undo()
                    f.done = True
                except Exception as err:  # keep undoing the others; report at the end
                    errors.append(f"{f.what} {f.target}: {err}")
        if errors:
            raise LabError("could not undo: " + "; ".join(errors))

    def apply(self, what: str, target: str) -> Fault:
        if what not in FAULTS:
            raise LabError(f"fault = {what!r}: allowed {', '.join(FAULTS)}")
        fault = _APPLY[what](self.lab, target)
        self.active.append(fault)
        return fault


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _kill(lab: Lab, target: str) -> Fault:
    c = lab.container(target)
    c.kill()
    return Fault("kill", target, lambda: (c.start(), None)[1])


def _pause(lab: Lab, target: str) -> Fault:
    c = lab.container(target)
    c.pause()

    def undo() -> None:
        c.reload()
        if c.status == "paused":
            c.unpause()
    return Fault("pause", target, undo)


def _stop(lab: Lab, target: str) -> Fault:
    c = lab.container(target)
    c.stop(timeout=10)
    return Fault("stop", target, lambda: (c.start(), None)[1])


def _partition(lab: Lab, target: str) -> Fault:
    """Cut the node off every lab network (peers, LB and clients alike)."""
    c = lab.container(target)
    nets = []
    for name, cfg in c.attrs["NetworkSettings"]["Networks"].items():
        net = lab.docker.networks.get(name)
        aliases = [a for a in (cfg.get("Aliases") or []) if a != c.id[:12]]
        net.disconnect(c)
        nets.append((net, aliases))

    def undo() -> None:
        for net, aliases in nets:
            try:
                net.connect(c, aliases=aliases)
            except APIError as err:  # already connected: nothing to undo
                if "already exists" not in str(err):
                    raise
    return Fault("partition", target, undo)


def _lb_loss(lab: Lab, target: str) -> Fault:
    c = lab.container(target if target.startswith("lb-") else "lb-a")
    c.kill()
    return Fault("lb_loss", c.labels["com.docker.compose.service"], lambda: (c.start(), None)[1])


def _region_loss(lab: Lab, target: str) -> Fault:
    region = target.removeprefix("region-") or "a"
    hit = [c for c in lab.containers() if c.labels.get("mqtt-ha-twin.region") == region]
    if not hit:
        raise LabError(f"target = {target!r}: no lab containers in region {region}")
    for c in hit:
        c.kill()

    def undo() -> None:
        for c in hit:
            c.start()
    return Fault("region_loss", f"region-{region}", undo)


def _rolling_restart(lab: Lab, target: str) -> Fault:
    """Restart each broker in turn, waiting for it to be healthy before the next."""
    for name in lab.brokers():
        lab.container(name).restart(timeout=10)
        time.sleep(1)
        lab.wait_healthy(120, [name])
    return Fault("rolling_restart", "all", lambda: None, done=True)


def _wan(lab: Lab, target: str) -> Fault:
    """Loss on region B's link: nft drop in the WAN sidecar (netem delay where the kernel has it)."""
    sidecars = [c for c in lab.containers("wan")]
    if not sidecars:
        raise LabError("fault = 'wan' needs the region-b profile (no WAN sidecar running)")
    loss = float(target or 0.3)
    # nft itself parses each command (no shell: braces and ';' are nft's, not sh's)
    cmds = (["nft", "add", "table", "inet", "twin"],
            ["nft", "add chain inet twin wan { type filter hook output priority 0 ; }"],
            ["nft", f"add rule inet twin wan numgen random mod 100 < {int(loss * 100)} drop"])
    for c in sidecars:
        for cmd in cmds:
            code, out = c.exec_run(cmd)
            if code:
                raise LabError(f"{c.name}: {' '.join(cmd)!r} failed: {out.decode().strip()}")

    def undo() -> None:
        for c in sidecars:
            c.exec_run(["nft", "delete", "table", "inet", "twin"])
    return Fault("wan", f"loss {loss}", undo)


_APPLY: dict[str, Callable[[Lab, str], Fault]] = {
    "kill": _kill, "pause": _pause, "stop": _stop, "partition": _partition, "lb_loss": _lb_loss,
    "region_loss": _region_loss, "rolling_restart": _rolling_restart, "wan": _wan,
}


def netem_available() -> bool:
    """This kernel's qdisc list: netem is missing on some (the CI kernel); nft works there."""
    try:
        with open("/proc/modules") as f:
            return "sch_netem" in f.read()
    except OSError:
        return False


def heal(lab: Lab) -> list[str]:
    """Undo what an interrupted run may have left behind; returns what it repaired."""
    repaired = []
    for c in lab.containers():
        if c.status == "exited" and c.labels.get("mqtt-ha-twin.role") in ("broker", "lb"):
            c.start()
            repaired.append(f"started {c.name}")
        if c.status == "paused":
            c.unpause()
            repaired.append(f"unpaused {c.name}")
        if c.labels.get("mqtt-ha-twin.role") == "wan" and c.status == "running":
            code, _ = c.exec_run(["sh", "-c", "nft delete table inet twin"])
            if code == 0:
                repaired.append(f"removed WAN rules in {c.name}")
    try:
        net = lab.docker.networks.get(f"{PROJECT}_region-a")
    except NotFound:
        return repaired
    attached = set(net.attrs.get("Containers", {}) or {})
    for name in REGION_A:
        try:
            c = lab.container(name)
        except LabError:
            continue
        if c.id not in attached and c.status == "running":
            net.connect(c, aliases=[name, f"{name}.lab.local"])
            repaired.append(f"reconnected {c.name}")
    return repaired
