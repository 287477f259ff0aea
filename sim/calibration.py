"""Lab results into the model, and the model's error measured against the lab.

Reads the lab's summary files (schema: lab/SCHEMA.md; files are where sim and lab meet).
`calibrate` fits, per failure mode, what the mechanistic transient model cannot know by itself:
how long the LB's probe takes to give up on a silent node, the client's own reconnect overhead,
the broker's CONNACK latency, the per-client outage of the failed node's clients (for the long-run
pools), the collateral outages of clients on surviving nodes, session resumption and message loss.
`validate` replays each held-out lab run in the transient model (same fault, clients, keepalive,
back-off, LB settings) with the calibrated values and measures the twin's error against it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from sim import __version__
from sim.transient import Scenario, simulate

# lab fault -> (the transient model's failure mode, does the failed host's address vanish)
FAULT_MODE: dict[str, tuple[str, bool | None]] = {
    "kill": ("crash", True),  # the process dies (connections reset), then its address is gone
    "stop": ("stop", True),
    "pause": ("hang", None),
    "partition": ("partition", None),
}
NOT_REPLAYED = {"rolling_restart": "several events in one run", "lb_loss": "not a node fault",
                "region_loss": "not a node fault", "wan": "not a node fault"}
FAMILIES = {"lognormal": stats.lognorm, "gamma": stats.gamma, "weibull": stats.weibull_min,
            "exponential": stats.expon}
MIN_SAMPLES = 20
LB_POLL_S = 0.2  # the lab reads HAProxy's view this often (lab/runner.py LBWatcher)
ROLES_POLL_S = 0.2  # ... and the survivors' leaders (lab/runner.py RolesWatcher)
MAX_FIT_KS = 0.1  # above this the best family is reported but the pools sample the data
CLIENT_GAVE_UP = 0.9  # an attempt that lasted this share of the keepalive: the client's timeout
SESSION_STORE_ROLE = "$MQTT_sess"  # the stand-in's session store (a JetStream stream) and its leader
EMQX_SESSIONS_ROLE = "sessions@"  # + node: EMQX's sessions of that node, held until it counts as down
REFUSED_S = 0.5  # an attempt answered faster than this without a CONNACK was refused at once
QUANTILES = np.linspace(0.0, 1.0, 101)
REPLAYS = 200  # transient replications per lab run
KS_BAR = 0.2  # issue #5: pooled KS distance below this, per mode


class CalibrationError(ValueError):
    """Input that cannot be calibrated from; one line."""


def load_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Lab summary files (or folders of them), in a stable order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.glob("*.json"))
        elif p.exists():
            files.append(p)
        else:
            raise CalibrationError(f"{p}: no such file or folder")
    results = []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise CalibrationError(f"{f}: not JSON ({err.msg})") from None
        if not isinstance(data, dict) or data.get("meta", {}).get("schema_version") != 1:
            raise CalibrationError(f"{f}: not a lab summary (meta.schema_version 1, lab/SCHEMA.md)")
        data["meta"]["source_file"] = str(f)
        if data.get("valid") is False:  # the checker found the run measured something else
            print(f"{f}: skipped, not a valid run: {'; '.join(data.get('invalid', []))[:300]}",
                  file=sys.stderr)
            continue
        results.append(data)
    if not results:
        raise CalibrationError("no lab summary files given")
    return results


def fit_positive(x: np.ndarray) -> dict[str, Any]:
    """Fit each family with location 0; choose the smallest KS statistic; report all."""
    x = np.maximum(np.asarray(x, dtype=float), 1e-3)
    fits = {}
    for name, family in FAMILIES.items():
        params = family.fit(x, floc=0)
        ks = stats.kstest(x, family.name, args=params)
        fits[name] = {"params": [float(p) for p in params], "ks": float(ks.statistic),
                      "p_value": float(ks.pvalue)}
    best = min(fits, key=lambda k: fits[k]["ks"])
    return {"family": best, "params": fits[best]["params"], "ks": fits[best]["ks"],
            # a mixture (e.g. 1 s and 7 s outages) fits no family: sample the data themselves
            "sampler": best if fits[best]["ks"] <= MAX_FIT_KS else "empirical",
            "alternatives": fits, "samples": int(len(x)),
            "median": float(np.median(x)), "p95": float(np.percentile(x, 95)),
            "quantiles": [float(q) for q in np.quantile(x, QUANTILES)]}


def empirical(x: list[float] | np.ndarray) -> dict[str, Any] | None:
    """A non-parametric fit (101 quantiles), for small offsets no family describes well."""
    x = np.asarray(x, dtype=float)
    if not len(x):
        return None
    return {"family": "empirical", "samples": int(len(x)), "median": float(np.median(x)),
            "p95": float(np.percentile(x, 95)),
            "quantiles": [float(q) for q in np.quantile(x, QUANTILES)]}


def frozen(fit: dict[str, Any]):
    return FAMILIES[fit["family"]](*fit["params"])


def draw(fit: dict[str, Any] | None, size: int, rng: np.random.Generator) -> np.ndarray:
    """Samples from a fit: parametric families by scipy, empirical ones by inverse CDF."""
    if fit is None or size == 0:
        return np.zeros(size)
    if fit.get("sampler", fit["family"]) == "empirical":
        return np.interp(rng.uniform(size=size), QUANTILES, fit["quantiles"])
    return frozen(fit).rvs(size=size, random_state=rng)


def _origin(r: dict[str, Any]) -> dict[str, Any] | None:
    o = r.get("origin")
    return o if o and o.get("placement_known") else None


def _target_outages(r: dict[str, Any]) -> np.ndarray:
    """The outages the model replays: the failed node's clients when the lab knew who they were."""
    o = _origin(r)
    return np.asarray(o["target_client_outages"] if o else r["client_outages"], float)


def _mode(r: dict[str, Any]) -> str | None:
    fm = FAULT_MODE.get(r["meta"]["fault"])
    return fm[0] if fm else None


def calibrate(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        mode = _mode(r)
        if mode is not None:
            by_mode.setdefault(mode, []).append(r)
    if not by_mode:
        raise CalibrationError("no run of a node fault (kill, pause, stop, partition)")
    modes = {}
    for mode, runs in sorted(by_mode.items()):
        outages = np.concatenate([_target_outages(r) for r in runs])
        if len(outages) < MIN_SAMPLES:
            raise CalibrationError(f"{mode}: {len(outages)} client outages in {len(runs)} run(s); "
                                   f"at least {MIN_SAMPLES} are needed to fit (run --repeat more)")
        reconnects = sum(r["sessions"]["reconnects"] for r in runs)
        present = sum(r["sessions"]["present"] for r in runs)
        modes[mode] = {
            "client_outage_s": _outage_fit(runs, outages),
            "session_present_ratio": present / reconnects if reconnects else None,
            "acknowledged_lost_per_event": float(np.mean([r["messages"]["acknowledged_lost"]
                                                          for r in runs])),
            "duplicates_per_event": float(np.mean([r["messages"]["duplicated"] for r in runs])),
            "lab_subscribers_per_node": float(np.mean([r["meta"]["clients"]["subscribers"]
                                                       / r["meta"].get("nodes", 3) for r in runs])),
            # EMQX's failure-detector tick in these runs (None: a broker without one)
            "lab_dist_net_ticktime_s": _tick(runs),
            "runs": len(runs),
            "mechanism": _mechanism(runs),
            "collateral": _collateral(runs),
        }
    timeouts = _probe_timeouts([r for runs in by_mode.values() for r in runs])
    # How long a survivor holds a CONNECT is the store's own timeout, whatever failed: a mode whose
    # clients never met the window (a crash's first retry goes to the dead node) takes the others'.
    held = [w for m in modes.values() for w in m["mechanism"]["session_store"]["held_s"]]
    for m in modes.values():
        m["mechanism"]["probe_timeout_measured_s"] = float(np.mean(timeouts)) if timeouts else None
        store = m["mechanism"]["session_store"]
        if not store["held_s"] and store["wait_s"] is not None and held:
            store["wait_s"], store["wait_from"] = float(np.median(held)), "other modes"
        del store["held_s"]
    # EMQX releases a silent node's sessions when Erlang's failure detector declares it down: the
    # same detector for a hang and a partition, so their windows are one sample
    silent = {mode: m for mode, m in modes.items() if mode in ("hang", "partition")
              and m["mechanism"]["session_store"]["role"].startswith(EMQX_SESSIONS_ROLE)}
    pooled = sorted(w for m in silent.values()
                    for w in m["mechanism"]["session_store"]["down_s"]["leader_lost"])
    # ... and the same survivors refuse CONNECTs the same way after either fault
    shares = [x for m in silent.values() for x in m["mechanism"]["session_store"]["refuse_p_per_run"]]
    chains = np.sum([m["mechanism"]["session_store"]["refusal_chains"] for m in silent.values()],
                    axis=0) if silent else np.zeros(4)
    for m in silent.values():
        store = m["mechanism"]["session_store"]
        store["release_pooled_s"] = pooled
        store["refuse_p_per_run"] = shares
        if chains[2:].sum():
            store["refuse_again_p"] = float(chains[3] / chains[2:].sum())
    for mode, m in modes.items():
        m["acknowledged_lost_residual_per_event"] = _loss_residual(by_mode[mode], m)
    metas = [r["meta"] for r in results]
    return {
        "name": name,
        "provenance": {
            "broker": sorted({m["broker"] for m in metas}),
            "standin": any(m.get("standin") for m in metas),
            "lb": metas[0]["lb"], "clients": metas[0]["clients"],
            "sessions": sorted({m["sessions"] for m in metas}),
            "scenario_files": sorted({m["scenario_file"] for m in metas}),
            "result_files": [m["source_file"] for m in metas],
            "lab_dates": sorted({m["date"] for m in metas}),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "tool": f"mqtt-ha-twin {__version__}",
        },
        "modes": modes,
    }


def _tick(runs: list[dict[str, Any]]) -> float | None:
    ticks = {r["meta"].get("dist_net_ticktime_s") for r in runs if not r["meta"].get("standin")}
    ticks.discard(None)
    return float(ticks.pop()) if len(ticks) == 1 else None


def _loss_residual(runs: list[dict[str, Any]], fitted: dict[str, Any], reps: int = 50
                   ) -> float | None:
    """Acknowledged loss per event that the model's own mechanism (subscribers whose session is
    gone miss what is published while they are out) does not explain: the lab's messages queued
    or in flight on the failed node, or routed to a session the broker re-created empty. The
    replay adds it (the long-run pools take the lab's whole loss per event). None where a run
    does not say enough to be replayed."""
    if not all("timings" in r["meta"] and "lb" in r["meta"] for r in runs):
        return None
    rng = np.random.default_rng(0)
    own = [replay(r["meta"], {**fitted, "acknowledged_lost_residual_per_event": 0.0}, rng, reps,
                  _leader_lost(r) if _origin(r) else None, _lb_down_at(r))["acknowledged_lost"]
           for r in runs]
    return float(np.mean([r["messages"]["acknowledged_lost"] for r in runs]) - np.mean(own))


def _probe_timeouts(runs: list[dict[str, Any]]) -> list[float]:
    """How long past the model's U(0, interval) + (fall - 1) x interval the LB took to mark the
    failed node down, per run (less half the lab's 0.2 s polling of the LB)."""
    out = []
    for r in runs:
        o = _origin(r)
        down = o.get("lb_target_down_s") if o else None
        if down is not None:
            lb = r["meta"]["lb"]
            out.append(down - LB_POLL_S / 2 - lb["interval_s"] / 2 - (lb["fall"] - 1) * lb["interval_s"])
    return out


def _outage_fit(runs: list[dict[str, Any]], outages: np.ndarray, size: int = 2000
                ) -> dict[str, Any]:
    """The outages the long-run pools draw from. Where every run says whether its failed node led
    the session store, the runs are reweighted so that it did in 1 of `nodes` failures (leaders
    spread evenly), not as often as the calibration runs happened (or were chosen) to; a fixed
    seed keeps the file reproducible. Otherwise the outages as measured."""
    lost = [_leader_lost(r) if _origin(r) else None for r in runs]
    if any(x is None for x in lost) or all(lost) or not any(lost):
        return {**fit_positive(outages), "leader_lost_share": None}
    per_run = [_target_outages(r) for r in runs]
    share = 1.0 / float(np.mean([r["meta"].get("nodes", 3) for r in runs]))
    n_lost = sum(lost)
    weights = np.concatenate([np.full(len(x), (share / n_lost if was else (1 - share)
                                                / (len(runs) - n_lost)) / len(x))
                              for x, was in zip(per_run, lost, strict=True)])
    sample = np.random.default_rng(0).choice(np.concatenate(per_run), size=size,
                                             p=weights / weights.sum())
    return {**fit_positive(sample), "samples": int(len(outages)), "leader_lost_share": share}


def _mechanism(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Timings the transient model takes as inputs, measured in the runs' histories."""
    origins = [o for o in map(_origin, runs) if o]
    overhead: list[float] = []
    latency: list[float] = []
    hung_attempts: list[float] = []
    for r, o in zip(runs, map(_origin, runs), strict=True):
        if not o:
            continue
        # Attempts the client gave up on: how long it really waits (its timer's granularity).
        wait = r["meta"]["clients"]["keepalive_s"]
        hung_attempts += [x for x in o.get("failed_attempt_s", []) if x >= CLIENT_GAVE_UP * wait]
        latency += o["connack_latency_s"]
        # The client's own overhead: how late its first attempt came after the back-off delay.
        first_try = r["meta"]["clients"]["reconnect_min_s"]
        overhead += [x - first_try for x in o.get("first_attempt_delay_s", [])]
    return {
        "runs_with_placement": len(origins),
        "session_store": _session_store(runs),
        "connack_latency_s": empirical(latency),
        "reconnect_overhead_s": empirical(np.maximum(overhead, 0.0)),
        # a check of the lab's LB, as measured from all runs (see calibrate); the replay takes the
        # configured value, which a handful of runs can only estimate to +-0.1 s
        "probe_timeout_measured_s": None,
        "connack_wait_s": empirical(hung_attempts),
        "lb_target_down_s": [o.get("lb_target_down_s") for o in origins],
        "detection_s": empirical([x for o in origins for x in o["detection_s"]]),
    }


def _store_down_s(r: dict[str, Any]) -> tuple[float, list[float], int, int, int]:
    """When the survivors could open sessions again; how long they held the CONNECTs that came
    before and dropped them; how many of those attempts outlasted the client's own timeout; how
    many were refused at once, of how many that were not a client's first. The window is measured
    directly where the lab saw a survivor take over the session store (polled every ROLES_POLL_S)
    before any client opened a session; else bracketed by the clients: after the last attempt a
    survivor held and dropped started, before the first that succeeded (0 when no attempt was
    held: the store was back before anyone needed it)."""
    o = _origin(r)
    after = o.get("lb_target_down_s") or 0.0  # earlier attempts may have gone to the failed node
    wait = r["meta"]["clients"]["keepalive_s"]
    attempts = [a[:3] for a in o.get("target_attempts", []) if a[0] >= after]
    held = [(a, d) for a, ok, d in attempts if not ok and REFUSED_S <= d < CLIENT_GAVE_UP * wait]
    elected = (o.get("roles_elected_s") or {}).get(_store_role(r) or SESSION_STORE_ROLE)
    first_ok = min((a for a, ok, _ in attempts if ok), default=None)
    # A poll can come late (a slow /jsz): a session opened before the leader was "seen" means
    # the watcher was late, and the clients' bracket is the better measure.
    blocked = [a for a, ok, _ in attempts if not ok and first_ok is not None and a < first_ok]
    if elected is not None and (first_ok is None or elected - ROLES_POLL_S / 2 <= first_ok):
        down = elected - ROLES_POLL_S / 2
    elif not held and elected is not None and blocked:
        # seen late, but clients were kept out until the first CONNACK (EMQX: held past them)
        down = min(a + d for a, ok, d in attempts if ok)
    elif not held:
        down = 0.0
    else:
        lower = max(a for a, _ in held)
        down = (lower + min((a for a, ok, _ in attempts if ok and a > lower), default=lower)) / 2
    # a CONNECT dropped within a second of the release ended with it, not after a hold
    held = [(a, d) for a, d in held if abs(a + d - down) > 1.0]
    before = [(a, ok, d) for a, ok, d in attempts if a < down and not ok]
    outlasted = sum(1 for _, _, d in before if d >= CLIENT_GAVE_UP * wait)
    refused = sum(1 for _, _, d in before if d < REFUSED_S)
    later = len(before) - min(o["target_clients"], len(before))  # all but each client's first
    # held when the store came back: dropped then (ended within a second of it, the watcher's
    # reading lags), or kept to the client's timeout
    gave_up = CLIENT_GAVE_UP * wait
    dropped = sum(1 for a, _, d in before if REFUSED_S <= d < gave_up and abs(a + d - down) <= 1.0)
    kept = sum(1 for a, _, d in before if d >= gave_up and a + d > down)
    return down, [d for _, d in held], outlasted, refused, later, dropped, dropped + kept


def _refusal_chains(r: dict[str, Any], down: float) -> tuple[int, int, int, int]:
    """Per client, before the release: after a held CONNECT, (held, refused) next; after a
    refused one, (held, refused) next. EMQX refuses in runs: 24 % after a held attempt, 76 % after
    a refused one (19 runs). Needs the client number of each attempt (lab runs from this date)."""
    o = _origin(r)
    after = o.get("lb_target_down_s") or 0.0
    by_client: dict[int, list] = {}
    for a in o.get("target_attempts", []):
        if len(a) == 4 and a[0] >= after and a[0] < down and not a[1]:
            by_client.setdefault(a[3], []).append(a)
    counts = [0, 0, 0, 0]  # held->held, held->refused, refused->held, refused->refused
    for seq in by_client.values():
        kinds = ["r" if d < REFUSED_S else "h" for _, _, d, _ in sorted(seq)]
        for prev, now in zip(kinds, kinds[1:], strict=False):
            counts[(prev == "r") * 2 + (now == "r")] += 1
    return counts[0], counts[1], counts[2], counts[3]


def _store_role(r: dict[str, Any]) -> str | None:
    """The role whose loss blocks new sessions: the stand-in's session-store stream, or EMQX's
    sessions of the failed node (lab/brokers.py); None where the lab did not see roles."""
    roles = (_origin(r) or {}).get("roles") or {}
    emqx = EMQX_SESSIONS_ROLE + str(r["meta"].get("target"))
    return SESSION_STORE_ROLE if SESSION_STORE_ROLE in roles else emqx if emqx in roles else None


def _leader_lost(r: dict[str, Any]) -> bool | None:
    role = _store_role(r)
    roles = (_origin(r) or {}).get("roles") or {}
    return roles[role] == r["meta"].get("target") if role else None


def _session_store(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How long the survivors could not open sessions, per run, grouped by whether the failed node
    led the session store (known from the brokers' roles; unknown elsewhere); how long a survivor
    held a CONNECT (None: longer than the clients waited, as EMQX's takeover of a silent node's
    session does); the share of a client's later CONNECTs it refused at once, overall and per
    run (a replay draws one run's share: some EMQX runs refused none, others a third)."""
    groups: dict[str, list[float]] = {"leader_lost": [], "leader_kept": [], "unknown": []}
    waits: list[float] = []
    outlasted = refused = later = dropped = across = 0
    per_run: list[float] = []  # a run's share refused after a held CONNECT (varies run to run)
    chains = np.zeros(4, dtype=int)
    for r in runs:
        if not _origin(r):
            continue
        down, held, n_out, n_ref, n_later, n_drop, n_across = _store_down_s(r)
        waits += held
        c = np.array(_refusal_chains(r, down))
        chains += c
        if c[:2].sum():
            per_run.append(float(c[1] / c[:2].sum()))
        elif n_later and not c.sum():  # older runs without client numbers: the flat share
            per_run.append(n_ref / n_later)
        outlasted, refused, later = outlasted + n_out, refused + n_ref, later + n_later
        dropped, across = dropped + n_drop, across + n_across
        lost = _leader_lost(r)
        groups["unknown" if lost is None else "leader_lost" if lost else "leader_kept"].append(down)
    wait: float | None = float(np.median(waits)) if waits else 0.0
    if outlasted > len(waits):  # most held CONNECTs outlasted the clients' patience
        wait = None
    return {"role": runs and _store_role(runs[0]) or SESSION_STORE_ROLE, "down_s": groups,
            "wait_s": wait, "wait_from": "this mode", "held_s": waits,
            "refuse_p": refused / later if later else 0.0,
            "refuse_p_per_run": per_run,
            "refuse_again_p": float(chains[3] / chains[2:].sum()) if chains[2:].sum() else None,
            "refusal_chains": chains.tolist(),
            "release_drop_p": dropped / across if across else 0.0,
            "attempts": {"outlasted_client": outlasted, "refused": refused, "later": later,
                         "held_across_release": across, "dropped_at_release": dropped}}


def _collateral(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Outages of clients that were NOT on the failed node (the broker's own side effects, e.g.
    a replicated store losing its leader): the transient model has no mechanism for them, so they
    are carried as a measured fraction and distribution."""
    fractions, outages = [], []
    for r in runs:
        o = _origin(r)
        if not o:
            continue
        c = r["meta"]["clients"]
        others = c["subscribers"] + c["publishers"] - o["target_clients"]
        fractions.append(len(o["collateral_outages"]) / others if others else 0.0)
        outages += o["collateral_outages"]
    return {"outages_per_other_client": float(np.mean(fractions)) if fractions else 0.0,
            "outage_s": empirical(outages)}


# ------------------------------------------------------------------------------ replay


def replay_scenario(meta: dict[str, Any]) -> Scenario:
    """The lab run as a transient scenario: its fault, clients, back-off and LB settings (the
    calibrated timings are set per replication by `replay`)."""
    mode, unreachable = FAULT_MODE[meta["fault"]]
    c, lb, t = meta["clients"], meta["lb"], meta["timings"]
    undo_during = meta.get("undo", "during_run") == "during_run"
    return Scenario(
        nodes=int(meta.get("nodes", 3)), failed=(0,), mode=mode,
        clients=c["subscribers"] + c["publishers"], unreachable=unreachable,
        return_after_s=t["fault_s"] if undo_during else float("inf"),
        algorithm=lb["algorithm"], probe_protocol=lb["probe"], probe_interval_s=lb["interval_s"],
        probe_threshold=lb["fall"], on_down=lb["on_down"],
        # HAProxy without `timeout check` (lab/lbconfig.py) gives a check `inter` to be answered
        probe_timeout_s=lb["interval_s"],
        keepalive_s=c["keepalive_s"],
        connect_timeout_s=c["keepalive_s"],  # the fleet waits one keepalive for CONNACK (paho)
        # ... checked at each client's own timer tick (older runs: one shared tick, see replay)
        timer_tick_s=(meta.get("client_timer_tick_s") or 0.0) if _own_phase(meta) else 0.0,
        initial_s=c["reconnect_min_s"], max_s=c["reconnect_max_s"], multiplier=2.0,
        sessions=meta["sessions"], qos=c["qos"], publish_per_s=c["publish_per_s"],
        subscriber_fraction=c["subscribers"] / (c["subscribers"] + c["publishers"]),
    )


def _own_phase(meta: dict[str, Any]) -> bool:
    return meta.get("client_timer_phase") == "per_client"


def _client_timeout(meta: dict[str, Any], mech: dict[str, Any], rng: np.random.Generator
                    ) -> float:
    """How long this run's clients wait for a CONNACK: one keepalive (each client's own tick is
    drawn by the model); in older runs checked on one tick shared by all clients of the run;
    else as measured."""
    if _own_phase(meta):
        return meta["clients"]["keepalive_s"]
    tick = meta.get("client_timer_tick_s")
    if tick is not None:
        return meta["clients"]["keepalive_s"] + float(rng.uniform(0, tick))
    timer = mech.get("connack_wait_s")
    return float(draw(timer, 1, rng)[0]) if timer else meta["clients"]["keepalive_s"]


def _windows_for(down_s: dict[str, list[float]], lost_leader: bool | None) -> list[float]:
    """The calibration runs' session-store windows that apply: those with the same leader
    situation when it is known and was calibrated. A store whose leader survived has nothing to
    wait for (0) when no calibration run showed otherwise; else all windows seen."""
    if lost_leader is not None:
        same = down_s.get("leader_lost" if lost_leader else "leader_kept") or []
        if same:
            return same
        if not lost_leader:
            return [0.0]
    return [w for ws in down_s.values() for w in ws]


def _released_at(r: dict[str, Any]) -> float | None:
    """On EMQX, when the run's survivors counted the failed node down (measured, like the LB's
    timing): given to the replay, so that it tests what clients do around it; how that moment
    varies is checked apart (validate's `release_s`)."""
    role = _store_role(r) if _origin(r) else None
    if not role or not role.startswith(EMQX_SESSIONS_ROLE):
        return None
    return _store_down_s(r)[0]


def _refused_share(r: dict[str, Any], released: float | None) -> float | None:
    """On EMQX (`released`: `_released_at`), the run's share of later CONNECTs refused at once
    rather than held (measured): a run-level effect (some runs refuse none, others most) that
    moves a whole run's outages by a retry. Given to the replay like the release; how it varies
    is checked apart (validate's `refused_share`)."""
    if released is None:
        return None
    c = np.array(_refusal_chains(r, released))
    return float(c[1] / c[:2].sum()) if c[:2].sum() else None


def _release_check(held_out: list[float], fitted: dict[str, Any], silent: bool
                   ) -> dict[str, Any] | None:
    """The held-out runs' release times against the calibration's (the replay took each run's
    own): the share of held-out windows inside the calibration's range, widened for a silent
    failure by a quarter tick (Erlang's detector fires within one tick interval, a quarter of the
    tick time), else by one poll of the watcher."""
    store = fitted["mechanism"].get("session_store") or {}
    cal = store.get("release_pooled_s") or [w for ws in store.get("down_s", {}).values() for w in ws]
    if not held_out or not cal:
        return None
    slack = (fitted.get("lab_dist_net_ticktime_s") or 0.0) / 4 if silent else ROLES_POLL_S
    lo, hi = min(cal) - slack, max(cal) + slack
    inside = float(np.mean([lo <= w <= hi for w in held_out]))
    return {"held_out": held_out, "calibration": cal, "range": [lo, hi], "inside": inside}


def _share_check(held_out: list[float], fitted: dict[str, Any]) -> dict[str, Any] | None:
    """The held-out runs' refusal shares against the calibration runs' (the replay took each run's
    own): with a handful of calibration runs this is where a fresh calibration is weakest."""
    cal = (fitted["mechanism"].get("session_store") or {}).get("refuse_p_per_run") or []
    if not held_out or not cal:
        return None
    lo, hi = min(cal), max(cal)
    return {"held_out": held_out, "calibration": cal, "range": [lo, hi],
            "inside": float(np.mean([lo <= x <= hi for x in held_out])),
            "mean": {"held_out": float(np.mean(held_out)), "calibration": float(np.mean(cal))}}


def _refuse_p(store: dict[str, Any], rng: np.random.Generator) -> float:
    """One replication's refusal share: a calibration run's own, drawn (a run-level effect)."""
    shares = store.get("refuse_p_per_run")
    return float(rng.choice(shares)) if shares else float(store.get("refuse_p", 0.0))


def _refuse_again_p(store: dict[str, Any]) -> float | None:
    """After a refusal, the next CONNECT's chance to be refused too (None: as after a held one)."""
    return store.get("refuse_again_p")


def _wait(store: dict[str, Any]) -> float:
    """How long a survivor holds a CONNECT while the store is down (None: past any client)."""
    return float("inf") if store.get("wait_s", 0.0) is None else float(store.get("wait_s", 0.0))


def _lb_down_at(r: dict[str, Any]) -> float | None:
    """When the LB took the failed node out in this run. HAProxy is polled every LB_POLL_S, so it
    happened during the poll before; the clients it reset (on_down = reset) date it exactly."""
    o = _origin(r)
    seen = o.get("lb_target_down_s") if o else None
    if seen is None:
        return None
    reset = [d for d in o["detection_s"] if seen - LB_POLL_S <= d <= seen]
    return float(np.median(reset)) if reset else seen - LB_POLL_S / 2


def replay(meta: dict[str, Any], fitted: dict[str, Any], rng: np.random.Generator,
           reps: int = REPLAYS, lost_leader: bool | None = None,
           lb_down_at_s: float | None = None, released_at_s: float | None = None,
           refused_share: float | None = None) -> dict[str, Any]:
    """Replay one lab run `reps` times: the failed node's clients' outages from their
    disconnect (as the lab measures them), sessions present, expected loss. The run's state at
    the fault is given, not redrawn: whether the failed node led the session store, and when the
    LB took it out (its check's phase against the fault: whether a crash's first retry finds the
    dead node still in rotation)."""
    mech = fitted["mechanism"]
    sc = replace(replay_scenario(meta), lb_down_at_s=lb_down_at_s)
    store = mech.get("session_store") or {"down_s": {}, "wait_s": 0.0}
    windows = [released_at_s] if released_at_s is not None else \
        store.get("release_pooled_s") or _windows_for(store["down_s"], lost_leader)
    outages, present, lost, dup = [], [], [], []
    for _ in range(reps):
        w = float(rng.choice(windows)) if windows else 0.0
        r = simulate(replace(sc, session_store_down_s=w, session_store_wait_s=_wait(store),
                             session_store_refuse_p=_refuse_p(store, rng)
                             if refused_share is None else refused_share,
                             session_store_refuse_again_p=_refuse_again_p(store),
                             session_store_release_drop_p=store.get("release_drop_p", 0.0),
                             connect_timeout_s=_client_timeout(meta, mech, rng)), rng)
        n = len(r.outage_s)
        # the client's own overhead comes with every attempt it makes
        per_try = draw(mech["reconnect_overhead_s"], int(r.tries.sum()), rng)
        overhead = np.add.reduceat(per_try, np.cumsum(r.tries) - r.tries) if n else np.zeros(0)
        x = r.outage_s - r.notice_s + overhead + draw(mech["connack_latency_s"], n, rng)
        outages.append(x)
        n_sub = int(round(n * sc.subscriber_fraction))
        present.append(r.session_present[:n_sub])
        lost.append(r.qos1_lost)
        dup.append(r.duplicates)
    return {"outages": np.concatenate(outages), "present_ratio": float(np.concatenate(present).mean()),
            "acknowledged_lost": float(np.mean(lost)) + (
                fitted["acknowledged_lost_per_event"]
                if fitted.get("acknowledged_lost_residual_per_event") is None
                else fitted["acknowledged_lost_residual_per_event"]),
            "duplicated": float(np.mean(dup)), "scenario": sc}


def _pcts(x: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _compare(lab: np.ndarray, sim: np.ndarray) -> dict[str, Any]:
    lp, sp = _pcts(lab), _pcts(sim)
    return {"lab": lp, "sim": sp,
            "rel_error": {k: (sp[k] - lp[k]) / lp[k] if lp[k] else None for k in lp},
            "ks_distance": float(stats.ks_2samp(lab, sim).statistic),
            # how far apart the two CDFs are in seconds (mean absolute shift): KS alone cannot
            # tell a 30 ms offset between two narrow distributions from a wrong shape
            "wasserstein_s": float(stats.wasserstein_distance(lab, sim)),
            "samples": {"lab": int(len(lab)), "sim": int(len(sim))}}


def ks_over_runs(lab: list[np.ndarray], sim: list[np.ndarray], seed: int = 1,
                 draws: int = 400, bar: float = KS_BAR) -> dict[str, Any] | None:
    """How much the pooled KS owes to which runs were held out: the pooled KS of random halves of
    the held-out runs (drawn without replacement, each run with its own replay). A run's outages
    share its LB decision, store window and CONNACK latency, so runs, not clients, are the
    independent samples: this is how often a hold-out half as large would have met the bar."""
    n = len(lab)
    if n < 4:
        return None
    k = n // 2
    rng = np.random.default_rng(seed)
    ks = np.array([stats.ks_2samp(np.concatenate([lab[i] for i in pick]),
                                  np.concatenate([sim[i] for i in pick])).statistic
                   for pick in (rng.choice(n, k, replace=False) for _ in range(draws))])
    return {"runs": k, "range90": [float(np.percentile(ks, 5)), float(np.percentile(ks, 95))],
            "bar": bar, "below_bar": float(np.mean(ks < bar)), "draws": draws}


def rel_error_over_runs(lab: list[np.ndarray], sim: list[np.ndarray], seed: int = 1,
                        draws: int = 1000) -> dict[str, list[float]] | None:
    """The pooled p50/p95 relative error's 95 % interval when the held-out runs are resampled
    with replacement (each run with its own replay): runs, not clients, are the independent
    samples, and where a run's outages sit in one of two modes (a crash's first retry finds the
    dead node or not) the pooled median jumps with the mix of runs."""
    if len(lab) < 2:
        return None
    rng = np.random.default_rng(seed)
    errs: dict[str, list[float]] = {"p50": [], "p95": []}
    for _ in range(draws):
        pick = rng.integers(0, len(lab), len(lab))
        lp = np.percentile(np.concatenate([lab[i] for i in pick]), [50, 95])
        sp = np.percentile(np.concatenate([sim[i] for i in pick]), [50, 95])
        for k, at_lab, at_sim in zip(("p50", "p95"), lp, sp, strict=True):
            errs[k].append((at_sim - at_lab) / at_lab if at_lab else 0.0)
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in errs.items()}


def consistent_with_targets(row: dict[str, Any], rel: float = 0.15) -> bool:
    """What a few fresh runs can show: the runs do not put the error of the pooled median or p95
    beyond `rel` (its run-resampled 95 % interval reaches into +-rel). Fails on an error every run
    shares; a mix of run types alone cannot fail it. Pooled over one run: the point error."""
    spread = row.get("rel_error_runs95")
    if not spread:
        return meets_targets(row, rel, ks=None)
    return all(lo <= rel and hi >= -rel for lo, hi in spread.values())


def validate(results: list[dict[str, Any]], calibration: dict[str, Any], seed: int = 1,
             reps: int = REPLAYS) -> dict[str, Any]:
    """Per held-out lab run and pooled per mode: lab vs the calibrated twin's replay."""
    rng = np.random.default_rng(seed)
    runs, skipped = [], []
    pooled: dict[str, dict[str, list]] = {}
    for r in results:
        meta = r["meta"]
        mode = _mode(r)
        fitted = calibration["modes"].get(mode) if mode else None
        lab = _target_outages(r)
        if fitted is None or len(lab) == 0:
            why = NOT_REPLAYED.get(meta["fault"], f"no calibration for mode {mode}" if mode
                                   else "not a node fault")
            skipped.append({"run": meta["source_file"], "why": why if len(lab) else "no outages"})
            continue
        released = _released_at(r)
        refused = _refused_share(r, released)
        sim = replay(meta, fitted, rng, reps, _leader_lost(r) if _origin(r) else None,
                     _lb_down_at(r), released, refused)
        o = _origin(r)
        coll = fitted["collateral"]
        others = (meta["clients"]["subscribers"] + meta["clients"]["publishers"]
                  - (o["target_clients"] if o else 0))
        row = {
            "run": meta["source_file"], "mode": mode, "target": meta.get("target"),
            "placement_known": o is not None,
            **_compare(lab, sim["outages"]),
            "session_present": {"lab": r["sessions"]["present_ratio"], "sim": sim["present_ratio"]},
            "acknowledged_lost": {"lab": r["messages"]["acknowledged_lost"],
                                  "sim": int(round(sim["acknowledged_lost"]))},
            "duplicated": {"lab": r["messages"]["duplicated"], "sim": round(sim["duplicated"], 2)},
            "collateral_outages": {"lab": len(o["collateral_outages"]) if o else None,
                                   "sim": round(coll["outages_per_other_client"] * others, 1)},
            "lab_outages": lab.tolist(),
        }
        runs.append(row)
        p = pooled.setdefault(mode, {"lab": [], "sim": [], "runs": [], "released": [],
                                     "refused": []})
        if released is not None:
            p["released"].append(released)
        if refused is not None:
            p["refused"].append(refused)
        p["lab"].append(lab)
        p["sim"].append(sim["outages"])
        p["runs"].append(meta["source_file"])
    if not runs:
        raise CalibrationError("no run matches a calibrated failure mode")
    by_mode = {mode: {"runs": len(p["runs"]),
                      **_compare(np.concatenate(p["lab"]), np.concatenate(p["sim"])),
                      "ks_half_of_runs": ks_over_runs(p["lab"], p["sim"], seed),
                      "rel_error_runs95": rel_error_over_runs(p["lab"], p["sim"], seed),
                      "sim_outages": np.concatenate(p["sim"]).tolist(),
                      "release_s": _release_check(p["released"], calibration["modes"][mode],
                                                  mode in ("hang", "partition")),
                      "refused_share": _share_check(p["refused"], calibration["modes"][mode])}
               for mode, p in sorted(pooled.items())}
    return {"runs": runs, "modes": by_mode, "skipped": skipped,
            "calibration": calibration.get("name"), "seed": seed, "replays_per_run": reps}


def meets_targets(row: dict[str, Any], rel: float = 0.15, ks: float | None = KS_BAR) -> bool:
    """Issue #5's bar: median and p95 within 15 %, KS distance below 0.2. `ks=None` for one run:
    its 20 or so clients time out together on the same LB decision and store window, and the KS
    of 20 samples has a 5 % critical value of 0.30, so the KS bar applies to runs pooled."""
    return (abs(row["rel_error"]["p50"]) <= rel and abs(row["rel_error"]["p95"]) <= rel
            and (ks is None or row["ks_distance"] < ks))


def _pct_cell(r: dict[str, Any], k: str) -> str:
    return f"{r['lab'][k]:.2f} / {r['sim'][k]:.2f} ({r['rel_error'][k] * 100:+.0f} %)"


def ks_spread(m: dict[str, Any]) -> str:
    """The KS of half the held-out runs: its 5-95 % range, and how often it met the bar."""
    b = m.get("ks_half_of_runs")
    return (f" (halves of {b['runs']} runs: {b['range90'][0]:.2f}-{b['range90'][1]:.2f}, "
            f"below {b['bar']} in {b['below_bar'] * 100:.0f} %)" if b else "")


def markdown_tables(calibration: dict[str, Any], report: dict[str, Any]) -> str:
    """What was calibrated, then lab vs twin per held-out run and pooled per mode."""
    out = ["| mode | runs | outage fit | median s | p95 s | probe timeout measured s | CONNACK wait s "
           "| CONNACK latency median s | collateral outages per other client | session present "
           "| ack lost per event |", "|---" * 11 + "|"]
    for mode, m in calibration["modes"].items():
        f, mech = m["client_outage_s"], m["mechanism"]
        lat = mech["connack_latency_s"]["median"] if mech["connack_latency_s"] else float("nan")
        wait = f"{mech['connack_wait_s']['median']:.2f}" if mech.get("connack_wait_s") else "-"
        probe = mech.get("probe_timeout_measured_s")
        probe = f"{probe:.2f}" if probe is not None else "-"
        out.append(f"| {mode} | {m['runs']} | {f['family']} (KS {f['ks']:.3f}) | {f['median']:.2f} "
                   f"| {f['p95']:.2f} | {probe} | {wait} "
                   f"| {lat:.3f} | {m['collateral']['outages_per_other_client']:.2f} "
                   f"| {m['session_present_ratio']} | {m['acknowledged_lost_per_event']:.2f} |")
    out += ["", "| run | mode | n lab | p50 lab / twin | p95 lab / twin | p99 lab / twin | KS "
            "| shift s | session present lab / twin | ack lost lab / twin | collateral outages lab / twin "
            "| bar met (run: p50, p95; pooled: and KS) |", "|---" * 12 + "|"]
    for r in report["runs"]:
        sp, al, co = r["session_present"], r["acknowledged_lost"], r["collateral_outages"]
        out.append(f"| {Path(r['run']).stem} | {r['mode']} | {r['samples']['lab']} "
                   f"| {_pct_cell(r, 'p50')} | {_pct_cell(r, 'p95')} | {_pct_cell(r, 'p99')} "
                   f"| {r['ks_distance']:.3f} | {r['wasserstein_s']:.3f} | {sp['lab']} / {sp['sim']:.2f} "
                   f"| {al['lab']} / {al['sim']} "
                   f"| {co['lab']} / {co['sim']} | {'yes' if meets_targets(r, ks=None) else 'NO'} |")
    for mode, m in report["modes"].items():
        out.append(f"| **all held-out ({m['runs']})** | {mode} | {m['samples']['lab']} "
                   f"| {_pct_cell(m, 'p50')} | {_pct_cell(m, 'p95')} | {_pct_cell(m, 'p99')} "
                   f"| {m['ks_distance']:.3f}{ks_spread(m)} | {m['wasserstein_s']:.3f} | | | "
                   f"| {'yes' if meets_targets(m) else 'NO'} |")
    return "\n".join(out)
