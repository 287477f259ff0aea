"""Per-node resource figures from each broker container's cgroup, and the broker's own counters.

CPU seconds and memory come from the cgroup files the Docker host keeps for each container
(v1: cpuacct.usage, memory.stat; v2: cpu.stat, memory.stat), read twice a second: EMQX's own
`emqx_vm_cpu_use` / `emqx_vm_used_memory` report the whole host (FACTS.md: 85-100 % CPU with EMQX
idle). Memory is the container's anonymous memory (what the broker holds), and the total without
its page cache beside it. The broker's counters (connections, subscriptions, messages in and out,
drops, alarms) come through its adapter once a second. Both go to `nodes.jsonl` as they come.
"""

from __future__ import annotations

import glob
import json
import threading
import time
from pathlib import Path
from typing import Any

from lab.brokers import get_json
from lab.cluster import Lab, LabError

CGROUP = Path("/sys/fs/cgroup")
SAMPLE_S = 0.5
COUNTERS_S = 1.0


def _stat(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


class CgroupReader:
    """One container's CPU seconds and memory bytes, from cgroup v1 or v2."""

    def __init__(self, container_id: str, root: Path = CGROUP) -> None:
        v1 = root / "cpuacct" / "docker" / container_id
        if (v1 / "cpuacct.usage").exists():
            self.version, self.cpu, self.mem = 1, v1, root / "memory" / "docker" / container_id
            return
        found = (glob.glob(str(root / "system.slice" / f"docker-{container_id}.scope"))
                 + glob.glob(str(root / "docker" / container_id)))
        if not found:
            raise LabError(f"no cgroup for container {container_id[:12]} under {root} (cgroup v1 "
                           "docker/<id> or v2 system.slice/docker-<id>.scope): the load lab must run "
                           "on the Docker host")
        self.version, self.cpu = 2, Path(found[0])
        self.mem = self.cpu

    def read(self) -> dict[str, float]:
        if self.version == 1:
            cpu_s = int((self.cpu / "cpuacct.usage").read_text()) / 1e9
            st = _stat(self.mem / "memory.stat")
            usage = int((self.mem / "memory.usage_in_bytes").read_text())
            anon = st.get("total_rss", st.get("rss", 0))
            cache = st.get("total_inactive_file", 0)
        else:
            cpu_s = _stat(self.cpu / "cpu.stat")["usage_usec"] / 1e6
            st = _stat(self.mem / "memory.stat")
            usage = int((self.mem / "memory.current").read_text())
            anon, cache = st.get("anon", 0), st.get("inactive_file", 0)
        return {"cpu_s": cpu_s, "anon_bytes": anon, "mem_bytes": usage - cache}


class NodeSampler:
    """A thread writing each broker's cgroup figures (2 Hz) and counters (1 Hz) to `out`."""

    def __init__(self, lab: Lab, out: Path) -> None:
        self.lab, self.out = lab, out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="node-sampler")
        self.readers: dict[str, CgroupReader] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.skip: set[str] = set()

    def start(self) -> None:
        for name in self.lab.brokers():
            c = self.lab.container(name)
            self.readers[name] = CgroupReader(c.id)
        self._file = self.out.open("a", encoding="utf-8")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._file.close()

    def last_connections(self, node: str) -> int:
        return int(self.last.get(node, {}).get("connections") or 0)

    def forget(self, node: str) -> None:
        """A killed node: its cgroup and API are gone; stop asking."""
        self.readers.pop(node, None)
        self.skip.add(node)

    def _write(self, ev: str, **fields: Any) -> None:
        self._file.write(json.dumps({"ev": ev, "t": time.time(), **fields}, separators=(",", ":")) + "\n")
        self._file.flush()

    def _loop(self) -> None:
        a = self.lab.config.adapter
        next_counters = 0.0
        while not self._stop.is_set():
            for name, reader in list(self.readers.items()):
                try:
                    self._write("node", node=name, **reader.read())
                except OSError:
                    continue  # a killed container's cgroup is gone: the node is not sampled
            if time.monotonic() >= next_counters:
                next_counters = time.monotonic() + COUNTERS_S
                for name, urls in self._counter_urls().items():
                    try:
                        answers = [get_json(u, self.lab.api_auth(), timeout_s=0.5) for u in urls]
                    except (OSError, ValueError):
                        continue  # busy or down: no counters for it this second
                    counters = a.counters_of(name, answers)
                    self.last[name] = counters
                    self._write("counters", node=name, **counters)
            self._stop.wait(SAMPLE_S)

    def _counter_urls(self) -> dict[str, list[str]]:
        paths = self.lab.config.adapter.counter_paths()
        per_path = [self.lab.broker_urls(p) for p in paths]
        return {n: [urls[n] for urls in per_path] for n in per_path[0]
                if n not in self.skip and all(n in u for u in per_path)} if per_path else {}
