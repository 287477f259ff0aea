"""The checker on synthetic histories with known losses, duplicates, reorders and outages."""

from __future__ import annotations

from pytest import approx

from lab.checker import check


def _history() -> list[dict]:
    h = [{"ev": "connect", "c": "r1-s0", "t": 0.0, "sp": False},
         {"ev": "connect", "c": "r1-p0", "t": 0.0, "sp": False}]
    for s in range(10):
        h.append({"ev": "send", "p": "r1-p0", "s": s, "t": 1.0 + s})
    for s in range(8):  # 8 and 9 never acknowledged
        h.append({"ev": "ack", "p": "r1-p0", "s": s, "t": 1.1 + s})
    # received: 0,1,2 then 4,3 (reorder), 5 twice (duplicate); 6 acknowledged but lost; 7 ok; 9 ok
    for s in (0, 1, 2, 4, 3, 5, 5, 7, 9):
        h.append({"ev": "recv", "c": "r1-s0", "p": "r1-p0", "s": s, "ts": 1.0 + s, "t": 1.25 + s,
                  "dup": 0})
    h += [{"ev": "disconnect", "c": "r1-s0", "t": 20.0},
          {"ev": "connect", "c": "r1-s0", "t": 23.5, "sp": True},
          {"ev": "disconnect", "c": "r1-p0", "t": 20.0},
          {"ev": "connect", "c": "r1-p0", "t": 21.0, "sp": False},
          {"ev": "stop", "t": 30.0},
          {"ev": "disconnect", "c": "r1-s0", "t": 30.5}]  # the fleet's own shutdown
    return h


def test_losses_duplicates_reorders() -> None:
    m = check(_history())["messages"]
    assert m["sent"] == 10 and m["acknowledged"] == 8
    assert m["acknowledged_lost"] == 1 and m["acknowledged_lost_examples"] == [["r1-p0", 6]]
    assert m["lost_unacknowledged"] == 1  # 8 (9 arrived although unacknowledged)
    assert m["duplicated"] == 1
    assert m["reordered"] == 1


def test_outages_sessions_and_latency() -> None:
    out = check(_history())
    assert sorted(out["client_outages"]) == [1.0, 3.5]
    assert out["clients"]["not_reconnected"] == []  # the disconnect after "stop" is no outage
    assert out["sessions"] == {"reconnects": 1, "present": 1, "present_ratio": 1.0}
    assert abs(out["delivery_latency_s"]["p50"] - 0.25) < 1e-9


def test_client_that_never_came_back() -> None:
    h = _history()
    h.insert(-2, {"ev": "disconnect", "c": "r1-p0", "t": 25.0})
    out = check(h)
    assert out["clients"]["not_reconnected"] == ["r1-p0"]


def test_empty_history() -> None:
    out = check([])
    assert out["messages"]["sent"] == 0 and out["client_outage_s"]["count"] == 0


def test_outages_split_by_where_the_client_was() -> None:
    """s0 was on the failed node a3: its first outage is replayed, with the timings of its attempts
    (one held 4 s by a survivor, then a CONNACK); p0 was on a1: its outage is collateral."""
    h = [{"ev": "connect", "c": "r1-s0", "t": 0.0, "sp": False},
         {"ev": "connect", "c": "r1-p0", "t": 0.0, "sp": False},
         {"ev": "fault", "what": "pause", "target": "emqx-a3", "phase": "start", "t": 10.0,
          "roles": {"$MQTT_sess": "emqx-a3"}, "placement": {"r1-s0": "emqx-a3", "r1-p0": "emqx-a1"}},
         {"ev": "lb", "node": "emqx-a3", "status": "DOWN", "t": 11.5},
         {"ev": "disconnect", "c": "r1-s0", "t": 11.6},
         {"ev": "attempt", "c": "r1-s0", "t": 12.65},
         {"ev": "disconnect", "c": "r1-s0", "t": 16.65},
         {"ev": "attempt", "c": "r1-s0", "t": 18.7},
         {"ev": "connect", "c": "r1-s0", "t": 18.72, "sp": True},
         {"ev": "disconnect", "c": "r1-p0", "t": 14.0},
         {"ev": "attempt", "c": "r1-p0", "t": 15.0},
         {"ev": "connect", "c": "r1-p0", "t": 15.1, "sp": False}]
    o = check(h)["origin"]
    assert o["placement_known"] and o["target_clients"] == 1
    assert o["roles"] == {"$MQTT_sess": "emqx-a3"}
    assert o["target_client_outages"] == [approx(7.12)]
    assert o["collateral_outages"] == [approx(1.1)]
    assert o["detection_s"] == [approx(1.6)] and o["lb_target_down_s"] == approx(1.5)
    assert o["first_attempt_delay_s"] == [approx(1.05)]
    assert o["failed_attempt_s"] == [approx(4.0)] and o["connack_latency_s"] == [approx(0.02)]
    # [start, CONNACK?, seconds, client, CONNACK code]: the held attempt got no CONNACK
    assert o["target_attempts"] == [[approx(2.65), False, approx(4.0), 0, None],
                                    [approx(8.7), True, approx(0.02), 0, 0]]


def test_a_refused_connack_ends_an_attempt_not_the_outage() -> None:
    """EMQX answers 0x88 (server unavailable) while a takeover from a silent node is pending: paho
    calls on_connect with the failure code, then disconnects. The outage goes on."""
    h = [{"ev": "connect", "c": "r1-s0", "t": 0.0, "sp": False, "rc": 0},
         {"ev": "fault", "what": "pause", "target": "emqx-a3", "phase": "start", "t": 10.0,
          "placement": {"r1-s0": "emqx-a3"}},
         {"ev": "disconnect", "c": "r1-s0", "t": 11.0, "rc": 128},
         {"ev": "attempt", "c": "r1-s0", "t": 12.0},
         {"ev": "connect", "c": "r1-s0", "t": 12.01, "sp": True, "rc": 136},
         {"ev": "disconnect", "c": "r1-s0", "t": 12.01, "rc": 141},
         {"ev": "attempt", "c": "r1-s0", "t": 16.0},
         {"ev": "connect", "c": "r1-s0", "t": 16.02, "sp": False, "rc": 0}]
    out = check(h)
    assert out["clients"]["refused_connacks"] == 1
    assert out["client_outages"] == [approx(5.02)]
    assert out["sessions"] == {"reconnects": 1, "present": 0, "present_ratio": 0.0}
    # the refused attempt carries its code (0x88 server unavailable), the accepted one 0
    assert out["origin"]["target_attempts"] == [[approx(2.0), False, approx(0.01), 0, 136],
                                                [approx(6.0), True, approx(0.02), 0, 0]]


def test_a_stream_that_never_delivered_before_the_fault_makes_the_run_invalid() -> None:
    """A subscription that never worked (seen: a connection dropped between CONNACK and SUBACK
    came back 'session present' with no subscription) is set-up, not failover: the run says so."""
    h = [{"ev": "connect", "c": "r1-s0", "t": 0.0, "sp": False},
         {"ev": "connect", "c": "r1-p0", "t": 0.0, "sp": False},
         {"ev": "connect", "c": "r1-p1", "t": 0.0, "sp": False}]
    for p in ("r1-p0", "r1-p1"):
        for s in range(5):
            h += [{"ev": "send", "p": p, "s": s, "t": 1.0 + s}, {"ev": "ack", "p": p, "s": s, "t": 1.1 + s}]
    for s in range(5):  # p0's stream arrives; p1's never does
        h.append({"ev": "recv", "c": "r1-s0", "p": "r1-p0", "s": s, "ts": 1.0 + s, "t": 1.2 + s, "dup": 0})
    fault = {"ev": "fault", "t": 10.0, "what": "kill", "target": "n1", "phase": "start"}
    out = check([*h, fault, {"ev": "stop", "t": 20.0}])
    assert out["valid"] is False and len(out["invalid"]) == 1 and "r1-p1" in out["invalid"][0]
    # with p1's first message delivered, the run is valid again
    h.append({"ev": "recv", "c": "r1-s0", "p": "r1-p1", "s": 0, "ts": 1.0, "t": 1.2, "dup": 0})
    assert check([*h, fault, {"ev": "stop", "t": 20.0}])["valid"] is True


def test_an_outage_still_open_at_the_end_is_censored_there() -> None:
    """s1 on the failed node never came back before the run stopped at 40 s: its outage is not
    dropped but recorded as censored at 40 - 12 = 28 s; the placement at the fault is counted."""
    h = [{"ev": "connect", "c": "r1-s0", "t": 0.0, "sp": False},
         {"ev": "connect", "c": "r1-s1", "t": 0.0, "sp": False},
         {"ev": "fault", "what": "pause", "target": "emqx-a3", "phase": "start", "t": 10.0,
          "placement": {"r1-s0": "emqx-a3", "r1-s1": "emqx-a3"}},
         {"ev": "disconnect", "c": "r1-s0", "t": 12.0},
         {"ev": "disconnect", "c": "r1-s1", "t": 12.0},
         {"ev": "attempt", "c": "r1-s0", "t": 13.0},
         {"ev": "connect", "c": "r1-s0", "t": 20.0, "sp": False},
         {"ev": "attempt", "c": "r1-s1", "t": 13.0},
         {"ev": "stop", "t": 40.0}]
    out = check(h)
    o = out["origin"]
    assert o["target_client_outages"] == [approx(8.0)] and o["target_censored_s"] == [approx(28.0)]
    assert out["client_outages_censored"] == [approx(28.0)] and out["clients"]["not_reconnected"] == ["r1-s1"]
    assert out["fault"]["measured_s"] == approx(30.0) and o["placement_counts"] == {"emqx-a3": 2}
