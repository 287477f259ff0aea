"""The failover summary's schema version (lab/SCHEMA.md) and the reading of older files.

Version 2 adds broker-neutral facts the lab's adapters derive from each broker's own answers,
so that calibration names no broker: `origin.sessions` (did the failed node own its clients'
sessions, when could a survivor open them, what released them), each attempt's CONNACK code and
`meta.failure_detector_tick_s` (None for a broker without one).
Version 1 files (the committed EMQX and stand-in sets, held-out runs made before) are read as
version 2: the role names they hold say which adapter wrote them.
"""

from __future__ import annotations

from typing import Any

from lab.brokers import EMQX_SESSIONS_ROLE, NO_SESSION_FACTS, SESSION_STORE_ROLE, session_facts_of

SCHEMA_VERSION = 2
READABLE = (1, 2)


def session_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """`origin.sessions` of a summary of any readable version (a version 1 file's derived from
    its roles, each time: the summary is not changed)."""
    origin = summary.get("origin") or {}
    if summary["meta"].get("schema_version") == 1:
        return v1_session_facts(origin, str(summary["meta"].get("target")))
    return origin.get("sessions") or dict(NO_SESSION_FACTS)


def v1_session_facts(origin: dict[str, Any], target: str) -> dict[str, Any]:
    """As the stand-in's adapter where its session store's leader was recorded, else as EMQX's
    where the failed node's sessions were (version 1 wrote only the roles)."""
    roles = origin.get("roles") or {}
    if SESSION_STORE_ROLE in roles:
        return session_facts_of(origin, target, SESSION_STORE_ROLE, "election")
    return session_facts_of(origin, target, EMQX_SESSIONS_ROLE + target, "failure_detector")


def failure_detector_tick_s(summary: dict[str, Any]) -> float | None:
    """The run's failure-detector tick (version 1: EMQX's dist_net_ticktime_s; the stand-in has
    none, though its files carry the setting)."""
    meta = summary["meta"]
    if meta.get("schema_version") == 1:
        return None if meta.get("standin") else meta.get("dist_net_ticktime_s")
    return meta.get("failure_detector_tick_s")
