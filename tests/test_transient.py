"""The vectorised transient model against its per-client SimPy oracle, and its properties."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sim.metrics import mean_ci
from sim.reconnect_calendar import admit
from sim.transient import Scenario, simulate
from sim.transient_reference import simulate_reference

SCENARIOS = {
    "crash, least connections, tcp probe": Scenario(
        nodes=3, failed=(0,), mode="crash", clients=300, return_after_s=30),
    "storm saturating max_conn_rate": Scenario(
        nodes=3, failed=(1,), mode="crash", clients=600, max_conn_rate_per_s=20, listen_backlog=40,
        jitter="full", return_after_s=float("inf")),
    "source-IP imbalance, 3 sites, VM loss": Scenario(
        nodes=3, failed=(1,), mode="vm", clients=300, algorithm="source_ip", sites=3,
        keepalive_s=10, jitter="full", return_after_s=600),
    "hung node behind a TCP probe": Scenario(
        nodes=3, failed=(0,), mode="hang", clients=240, keepalive_s=10, return_after_s=90),
    "hang behind an http probe, reset, durable sessions": Scenario(
        nodes=5, failed=(0,), mode="hang", clients=500, probe_protocol="http", on_down="reset",
        sessions="durable", jitter="equal", max_conn_rate_per_s=30, listen_backlog=30,
        return_after_s=900),
    "partition, round robin, decorrelated jitter, max_connections": Scenario(
        nodes=4, failed=(2,), mode="partition", clients=400, algorithm="round_robin",
        keepalive_s=10, jitter="decorrelated", max_connections=120, return_after_s=60),
    "client-IP persistence over least connections, crash": Scenario(
        nodes=3, failed=(0,), mode="crash", clients=600, persistence="client_ip", sites=12,
        probe_threshold=2, return_after_s=40),
    "container kill: connections reset, address gone, probe timeout, CONNACK latency, timer tick":
    Scenario(
        nodes=3, failed=(2,), mode="crash", clients=60, unreachable=True, probe_protocol="mqtt",
        probe_interval_s=1, probe_timeout_s=1, on_down="reset", keepalive_s=5, connect_timeout_s=5,
        max_s=8, connack_latency_s=0.15, timer_tick_s=0.25, sessions="durable", return_after_s=float("inf")),
    "hang, session store leader lost, survivors hold CONNECTs, storm": Scenario(
        nodes=3, failed=(0,), mode="hang", clients=600, probe_protocol="http", probe_interval_s=1,
        probe_timeout_s=1, on_down="reset", keepalive_s=5, connect_timeout_s=5, max_s=8,
        session_store_down_s=8.0, session_store_wait_s=4.0, max_conn_rate_per_s=40,
        listen_backlog=60, jitter="full", sessions="durable", return_after_s=12),
    "EMQX hang: survivors hold CONNECTs past the client's timeout, refuse later ones at random":
    Scenario(
        nodes=3, failed=(1,), mode="hang", clients=60, probe_protocol="http", probe_interval_s=1,
        probe_timeout_s=1, on_down="reset", keepalive_s=5, connect_timeout_s=5, max_s=8,
        session_store_down_s=21.5, session_store_wait_s=float("inf"), session_store_refuse_p=0.25,
        session_store_refuse_again_p=0.75, timer_tick_s=0.25, return_after_s=float("inf")),
    "EMQX partition: held CONNECTs often dropped when the cluster counts the node down": Scenario(
        nodes=3, failed=(2,), mode="partition", clients=60, probe_protocol="http",
        probe_interval_s=1, probe_timeout_s=1, on_down="reset", keepalive_s=5, connect_timeout_s=5,
        max_s=8, session_store_down_s=21.5, session_store_wait_s=float("inf"),
        session_store_refuse_p=0.3, session_store_release_drop_p=0.6, timer_tick_s=0.25),
    "EMQX hang, TCP probe, least connections: HAProxy counts the hung node's connections, "
    "the run ends at 25 s": Scenario(
        nodes=3, failed=(0,), mode="hang", clients=60, probe_protocol="tcp", probe_interval_s=5,
        keepalive_s=5, connect_timeout_s=5, max_s=8, session_store_down_s=21.5,
        session_store_wait_s=float("inf"), session_store_refuse_p=0.2, timer_tick_s=0.25,
        lb_holds_closed_s=90.0, initial_counts=(30, 20, 10), horizon_s=25.0),
    "crash, TCP probe, address gone: HAProxy keeps connecting for 20 s, out of rotation at 8.5 s":
    Scenario(
        nodes=3, failed=(0,), mode="crash", clients=60, unreachable=True, probe_protocol="tcp",
        probe_interval_s=5, probe_timeout_s=5, keepalive_s=5, connect_timeout_s=5, max_s=8,
        timer_tick_s=0.25, lb_connect_hold_s=20.0, lb_down_at_s=8.5, horizon_s=40.0),
}
REPS = 150
# family-wise 95 %: five compared metrics per scenario
Z_FAMILY = float(stats.norm.ppf(1 - 0.025 / (5 * len(SCENARIOS))))


def _runs(model, sc: Scenario, seed: int, reps: int):
    rng = np.random.default_rng(seed)
    p50, p95, one, present, tries, after, cens = [], [], [], [], [], [], []
    for _ in range(reps):
        r = model(sc, rng)
        p50.append(np.percentile(r.outage_s, 50))
        p95.append(np.percentile(r.outage_s, 95))
        one.append(r.outage_s[rng.integers(len(r.outage_s))])  # one client per run: iid for KS
        present.append(r.session_present.mean())
        tries.append(r.tries.mean())
        after.append(r.tries_after_timer.mean())
        cens.append(r.censored.mean())
    return tuple(map(np.array, (p50, p95, one, present, tries, after, cens)))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_vectorised_agrees_with_per_client_reference(name: str) -> None:
    sc = SCENARIOS[name]
    ref = _runs(simulate_reference, sc, 1, REPS)
    vec = _runs(simulate, sc, 2, 4 * REPS)  # 4x the runs: its own noise is small beside the CI
    for label, r, v in (("p50", ref[0], vec[0]), ("p95", ref[1], vec[1]),
                        ("attempts per client", ref[4], vec[4]),
                        ("attempts after the client's timer last ended one", ref[5], vec[5]),
                        ("share still out at the horizon", ref[6], vec[6])):
        mean, (lo, hi) = mean_ci(r)
        # the difference of two sample means, each with its own error; Bonferroni over every
        # comparison of this test (a 95 % bound on each of 42 would fail ~2 by chance per run)
        se = np.hypot(r.std(ddof=1) / np.sqrt(len(r)), v.std(ddof=1) / np.sqrt(len(v)))
        tol = Z_FAMILY * se + 1e-9 * max(1.0, abs(mean))  # zero spread (deterministic): ==
        print(f"{name} {label}: reference {mean:.3f} [{lo:.3f}, {hi:.3f}], vectorised {v.mean():.3f}"
              f", difference {v.mean() - mean:+.3f} (bound {tol:.3f})")
        assert abs(v.mean() - mean) <= tol, label
    ks = stats.ks_2samp(ref[2], vec[2])
    print(f"{name}: KS {ks.statistic:.3f}, p = {ks.pvalue:.3f}")
    assert ks.pvalue >= 0.01
    assert ref[3].mean() == pytest.approx(vec[3].mean(), abs=0.05)


def test_storm_scenario_saturates_the_limit() -> None:
    """The storm scenario above is a storm: survivors receive attempts faster than they admit."""
    r = simulate(SCENARIOS["storm saturating max_conn_rate"], np.random.default_rng(0))
    assert r.peak_arrivals_per_s.max() > 5 * 20


def test_hung_node_behind_tcp_probe_holds_clients_until_it_returns() -> None:
    sc = SCENARIOS["hung node behind a TCP probe"]
    r = simulate(sc, np.random.default_rng(0))
    assert np.median(r.outage_s) >= sc.return_after_s  # the LB kept sending them back to it
    http = Scenario(**{**sc.__dict__, "probe_protocol": "http"})
    r_http = simulate(http, np.random.default_rng(0))
    assert np.median(r_http.outage_s) < 2 * 2 * sc.keepalive_s  # keepalive, then a survivor


def test_admit_matches_a_plain_fifo_loop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = int(rng.integers(1, 200))
        a = np.sort(rng.uniform(0, rng.uniform(0.01, 5), m))
        nf, rate, wait = rng.uniform(0, 3), rng.uniform(1, 100), rng.uniform(0, 2)
        out, last = admit(a, nf, rate, wait)
        expect = np.full(m, np.nan)
        for i, x in enumerate(a):
            start = max(x, nf)
            if start - x <= wait:
                expect[i], nf = start, start + 1 / rate
        np.testing.assert_allclose(out, expect)
        assert last == pytest.approx(nf)


# ---------------------------------------------------------------- properties (hypothesis)

storms = st.fixed_dictionaries({
    "clients": st.integers(30, 1500),
    "rate": st.one_of(st.none(), st.floats(5, 500)),
    "backlog": st.integers(5, 500),
    "timeout": st.floats(1, 10),
    "initial": st.floats(0.2, 3),
})


def _storm(d, **over) -> Scenario:
    base = dict(nodes=3, failed=(0,), mode="crash", clients=d["clients"],
                max_conn_rate_per_s=d["rate"], listen_backlog=d["backlog"],
                connect_timeout_s=d["timeout"], initial_s=d["initial"], probe_interval_s=1e-6,
                return_after_s=float("inf"))
    base.update(over)
    return Scenario(**base)


@settings(max_examples=40, deadline=None)
@given(storms, st.integers(2, 6))
def test_more_nodes_never_raise_client_outage(d, nodes: int) -> None:
    small = simulate(_storm(d, nodes=nodes), np.random.default_rng(0))
    big = simulate(_storm(d, nodes=nodes + 1), np.random.default_rng(0))
    assert big.outage_s.sum() <= small.outage_s.sum() + 1e-9
    assert big.outage_s.max() <= small.outage_s.max() + 1e-9


@settings(max_examples=40, deadline=None)
@given(storms, st.sampled_from(["full", "equal", "decorrelated"]))
def test_jitter_never_raises_the_peak_reconnect_rate(d, jitter: str) -> None:
    plain = simulate(_storm(d), np.random.default_rng(0))
    jittered = simulate(_storm(d, jitter=jitter), np.random.default_rng(0))
    assert jittered.peak_arrivals_per_s.max() <= plain.peak_arrivals_per_s.max()


@settings(max_examples=40, deadline=None)
@given(storms, st.sampled_from(["crash", "vm", "hang", "partition", "disk"]),
       st.integers(3, 5), st.floats(0.1, 50))
def test_durable_sessions_never_lose_more_than_memory(d, mode: str, nodes: int, rate: float
                                                      ) -> None:
    common = dict(mode=mode, nodes=nodes, keepalive_s=5, publish_per_s=rate, return_after_s=120)
    memory = simulate(_storm(d, sessions="memory", **common), np.random.default_rng(0))
    durable = simulate(_storm(d, sessions="durable", **common), np.random.default_rng(0))
    assert durable.qos1_lost <= memory.qos1_lost + 1e-9
    assert durable.session_present.sum() >= memory.session_present.sum()


@pytest.mark.parametrize("algorithm", ["five_tuple", "least_connections", "source_ip"])
def test_storm_curve_ends_at_the_final_counts(algorithm: str) -> None:
    """`twin storm`'s connected-clients curve starts from the run's own placement (five_tuple
    places clients at random) and ends at the counts the transient reports."""
    from sim.storm import connected_over_time

    sc = Scenario(nodes=3, failed=(1,), mode="crash", clients=900, algorithm=algorithm, sites=7,
                  return_after_s=float("inf"))
    r = simulate(sc, np.random.default_rng(3))
    conn = connected_over_time(sc, r, np.array([0.0, r.outage_s.max() + 1]))
    np.testing.assert_array_equal(conn[:, -1], r.counts_after)
    assert conn[:, -1].sum() == sc.clients and conn[1, 0] == 0


def test_clients_back_on_a_step_boundary_take_one_step(monkeypatch) -> None:
    """The last node of a region in maintenance: 2,000 clients without jitter retry at 1, 3, 7,
    ..., 247, 367 s, all together. 367 s is a step boundary that floor() rounds below: the step
    must still hold them all (it once took one attempt per step, 2,000 steps for one retry)."""
    import sim.reconnect_calendar as calendar

    sizes: list[int] = []
    steps = calendar.Calendar.steps

    def counted(self, pending):
        for step in steps(self, pending):
            sizes.append(len(step[1]))
            yield step

    monkeypatch.setattr(calendar.Calendar, "steps", counted)
    sc = Scenario(nodes=3, failed=(0,), mode="stop", clients=2000, down_before=(1, 2),
                  return_after_s=333.0, initial_s=1.0, max_s=120.0, jitter="none")
    r = simulate(sc, np.random.default_rng(1))
    assert len(sizes) <= 12 and max(sizes) == 2000
    assert np.all(r.outage_s == 367.0)


HUNG = dict(nodes=3, failed=(0,), mode="hang", clients=60, algorithm="least_connections",
            probe_protocol="tcp", probe_interval_s=5, keepalive_s=5, connect_timeout_s=5,
            initial_s=1, max_s=8, session_store_down_s=20.0, session_store_wait_s=float("inf"))


def test_a_transient_that_cannot_end_is_cut_at_its_horizon_and_censored() -> None:
    """A hang the TCP probe never sees: every retry goes to the hung node (it has the fewest
    connections once its clients left). Cut at 50 s, all 20 clients are censored there."""
    r = simulate(Scenario(**HUNG, horizon_s=50.0), np.random.default_rng(1))
    assert r.censored.all() and np.all(r.outage_s == 50.0) and len(r.outage_s) == 20


def test_least_connections_counting_the_hung_nodes_held_connections_sends_retries_elsewhere() -> None:
    """HAProxy keeps counting the connections its clients left on a hung server (no FIN comes
    back) until `timeout server`: retries go to the survivors, and everyone is back once the
    survivors may take the sessions over (20 s), long before the 50 s horizon."""
    r = simulate(Scenario(**HUNG, horizon_s=50.0, lb_holds_closed_s=90.0), np.random.default_rng(1))
    assert not r.censored.any() and np.all(r.final_node != 0)
    assert np.all(r.outage_s > 20.0)


def test_a_crash_retry_finds_an_empty_survivor_as_the_placement_says() -> None:
    """Least connections, the dead node out of rotation only at 8 s: with 20/20/20 every first
    retry (1 s) goes to the dead node (0 connections, the fewest); with the dead node and one
    survivor holding 30 each and the other none, the retries alternate between the two empty
    nodes (an attempt pending at the dead node counts): half are back at once, as in the lab."""
    crash = dict(nodes=3, failed=(0,), mode="crash", clients=60, unreachable=True,
                 probe_protocol="tcp", probe_interval_s=5, keepalive_s=5, connect_timeout_s=5,
                 initial_s=1, max_s=8, lb_down_at_s=8.0)
    even = simulate(Scenario(**crash), np.random.default_rng(2))
    uneven = simulate(Scenario(**crash, initial_counts=(30, 30, 0)), np.random.default_rng(2))
    assert np.mean(even.outage_s < 2) == 0.0
    assert np.mean(uneven.outage_s < 2) == 0.5 and len(uneven.outage_s) == 30


def test_the_lb_trying_to_connect_to_a_vanished_node_keeps_it_loaded() -> None:
    """A retry at 8 s, before the LB takes the dead node out (8.5 s): if the LB dropped the
    first retries' connects when their clients gave up (6 s), the dead node has the fewest
    connections again and takes every second retry too (back at 17 s); HAProxy goes on trying
    to connect for 20 s, so the dead node counts as loaded as the survivors and the second
    retries share the three nodes: two thirds back at 8 s, as in the lab (p50 8.2, p95 17.4)."""
    crash = dict(nodes=3, failed=(0,), mode="crash", clients=60, unreachable=True,
                 probe_protocol="tcp", probe_interval_s=5, keepalive_s=5, connect_timeout_s=5,
                 initial_s=1, max_s=8, lb_down_at_s=8.5)
    dropped = simulate(Scenario(**crash), np.random.default_rng(3))
    held = simulate(Scenario(**crash, lb_connect_hold_s=20.0), np.random.default_rng(3))
    assert np.all(dropped.outage_s == 17.0)
    assert np.mean(held.outage_s == 8.0) == pytest.approx(2 / 3, abs=0.05)
    assert np.all((held.outage_s == 8.0) | (held.outage_s == 17.0))


def test_a_topology_says_what_its_least_connections_lb_counts() -> None:
    """`[lb] holds_closed_s` reaches the long run's transients: a hang behind a TCP probe (never
    taken out) under least connections without persistence. Counting live flows only (the
    default), every retry goes back to the hung node until it returns at 600 s; an LB that counts
    the hung node's connections for 90 s, as HAProxy does, sends them to the survivors. A design
    without the keys keeps its pools: the keys at 0 do not enter `transient_inputs`."""
    from conftest import make_spec

    from sim.pools import scenario_for, transient_inputs

    hang = {"mtbf_hours": 1000, "repair": {"dist": "exponential", "mean_s": 600}}
    lb = {"algorithm": "least_connections", "probe": {"protocol": "tcp", "interval_s": 5}}
    tables = {"node": {"failure": {"hang": hang}},
              "clients": {"count": 300, "keepalive_s": 10}}
    live = make_spec(lb=lb, **tables)
    haproxy = make_spec(lb={**lb, "holds_closed_s": 90.0, "connect_hold_s": 20.0}, **tables)
    assert "holds_closed_s" not in transient_inputs(live)
    assert transient_inputs(live) != transient_inputs(haproxy)
    out = {}
    for name, spec in (("live", live), ("haproxy", haproxy)):
        sc = scenario_for(spec, 0, "node.hang", 3, 600.0)
        assert sc.lb_holds_closed_s == (90.0 if name == "haproxy" else 0.0)
        r = simulate(sc, np.random.default_rng(5))
        out[name] = np.median(r.outage_s)
    assert out["live"] >= 600.0 and out["haproxy"] < 60.0, out


def test_tick_started_timeouts_fire_on_time_at_the_calibrated_share() -> None:
    """A timeout that fell on the client's tick fires a tick late, but for `timer_on_time_p` of
    them (the lab's paho fleet: 2 of 85): the share drawn is that one, within its 99.9 % interval."""
    from sim.client_timers import client_timeouts

    sc = Scenario(nodes=3, failed=(2,), mode="hang", clients=10, timer_tick_s=0.25,
                  connect_timeout_s=5.0, timer_on_time_p=0.3)
    n = 20000
    t = client_timeouts(sc, n, np.random.default_rng(7), np.ones(n, bool))
    assert set(np.round(t, 9)) == {5.0, 5.25}
    share = float(np.mean(t == 5.0))
    assert abs(share - 0.3) < 3.3 * np.sqrt(0.3 * 0.7 / n)
    late = client_timeouts(replace(sc, timer_on_time_p=0.0), n, np.random.default_rng(7),
                           np.ones(n, bool))
    assert np.all(late == 5.25)


def test_calibration_measures_the_on_time_share_of_tick_started_timeouts() -> None:
    from calibration.fit import calibrate
    from calibration.results import load_results

    runs = Path(__file__).resolve().parents[1] / "models" / "calibration" / \
        "emqx-5.8.9-2026-12-04-tcp-probe-calibration-runs"
    mech = calibrate(load_results([runs]), "t")["modes"]["hang"]["mechanism"]
    assert (mech["timer_timeouts"], round(mech["timer_on_time_p"] * 85)) == (85, 2)
