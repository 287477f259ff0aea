"""A failover run's summary from its history alone (lab/SCHEMA.md): what `twin lab run` writes after
a run, and what makes today's summary of a history recorded by an older harness (its meta record
keeps the version it was made with, in `meta.recorded_schema_version`).

    python -m lab.recheck HISTORY.jsonl... --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lab.brokers import adapter
from lab.checker import check
from lab.history import read_history
from lab.summary_schema import SCHEMA_VERSION


def summary_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The checker's summary, the run's meta (from its meta record), the fault's target and the
    adapter's broker-neutral session facts."""
    meta = next(({k: v for k, v in r.items() if k not in ("ev", "t")} for r in records
                 if r["ev"] == "meta"), None)
    if meta is None:
        raise ValueError("no meta record: not a failover run's history")
    target = next((r.get("target", "") for r in records if r["ev"] == "fault"
                   and r.get("phase") == "start"), "")
    recorded = meta.get("schema_version")
    if recorded != SCHEMA_VERSION:
        meta["recorded_schema_version"] = recorded
        meta.setdefault("failure_detector_tick_s",
                        None if meta.get("standin") else meta.get("dist_net_ticktime_s"))
    summary = check(records)
    summary["meta"] = {**meta, "schema_version": SCHEMA_VERSION, "target": target}
    if summary.get("origin") is not None:
        broker = "standin" if meta.get("standin") else "emqx"
        summary["origin"]["sessions"] = adapter(broker).session_facts(summary["origin"], target)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("histories", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    missing = [p for p in a.histories if not p.is_file()]
    if missing:
        ap.error(f"{missing[0]}: no such file")
    a.out.mkdir(parents=True, exist_ok=True)
    for p in a.histories:
        try:
            summary = summary_of(read_history(p))
        except (ValueError, KeyError) as err:
            print(f"{p}: {err}", file=sys.stderr)
            return 2
        dest = a.out / (p.stem + ".json")
        dest.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
