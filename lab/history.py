"""The run history: JSON lines appended (and flushed) as events happen, so nothing is lost.

Record kinds (`ev`), all times `t` in Unix seconds:
  connect     c (client id), sp (session present), rc
  disconnect  c, rc
  send        p (publisher id), s (sequence), q (QoS)
  ack         p, s
  recv        c (subscriber id), p, s, ts (send time from the payload), dup (DUP flag)
  attempt     c: a reconnect attempt starts (the fleet's own back-off schedules it)
  fault       what, target, phase ("start" | "end"); at start also roles (who led what) and
              placement ({client id: node}, from the brokers; {} where unknown)
  lb          node, status ("UP" | "DOWN"): the LB's view changed (polled every 0.2 s)
  roles       roles: the survivors report different leaders after the fault (polled every 0.2 s)
  meta        free-form run metadata (first line)
  stop        the fleet is being shut down: later disconnects are not outages
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any


class HistoryWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, ev: str, **fields: Any) -> None:
        line = json.dumps({"ev": ev, "t": fields.pop("t", time.time()), **fields},
                          separators=(",", ":"))
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()

    def close(self) -> None:
        with self._lock:
            self._f.close()


def read_history(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (the run was killed mid-write) is skipped."""
    records = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
