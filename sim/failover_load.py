"""Each survivor's CPU and memory through a failover: the failed node's clients arriving, the
CPU of their connects, the sessions waiting for them and the messages queued there.

From one transient (sim/transient.py). Assumptions, stated once:
* a connect costs CPU in the second its CONNACK is sent; refused and timed-out attempts cost
  nothing (a lower bound on the storm's CPU);
* a client whose session survives is an offline session until it is back, held evenly by the
  survivors, and a subscriber's session queues `publish_per_s` messages up to MAX_MQUEUE (EMQX
  drops the oldest beyond it: that loss is already in the transient's `qos1_lost`);
* EMQX's high-CPU alarm compares CPU averaged over its 60 s check interval with 80 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.resources import CPU_ALARM, LoadCosts, NodeLoad, NodeSize
from sim.transient import HORIZON_CAP_S, MAX_MQUEUE, Scenario, TransientResult

ALARM_WINDOW_S = 60  # EMQX sysmon cpu_check_interval (FACTS)


@dataclass
class SurvivorLoad:
    t_s: np.ndarray  # start of each step
    cpu_cores: np.ndarray  # survivors x steps
    memory_bytes: np.ndarray  # survivors x steps
    connections: np.ndarray  # survivors x steps
    all_back_s: float  # when the last client that came back did
    never_back: int  # clients still out at the horizon (full scale)

    def peak_cpu(self) -> float:
        return float(self.cpu_cores.max())

    def peak_memory(self) -> float:
        return float(self.memory_bytes.max())

    def alarm_cpu(self, step_s: float) -> float:
        """The busiest survivor's CPU averaged over the alarm's 60 s window, at its worst."""
        w = max(int(round(ALARM_WINDOW_S / step_s)), 1)
        if self.cpu_cores.shape[1] < w:  # a storm shorter than the window: pad with steady load
            pad = np.repeat(self.cpu_cores[:, -1:], w - self.cpu_cores.shape[1], axis=1)
            cpu = np.hstack([self.cpu_cores, pad])
        else:
            cpu = self.cpu_cores
        c = np.cumsum(np.pad(cpu, ((0, 0), (1, 0))), axis=1)
        return float(((c[:, w:] - c[:, :-w]) / w).max())


def survivor_load(sc: Scenario, result: TransientResult, costs: LoadCosts, scale: float = 1.0,
                  step_s: float = 1.0) -> SurvivorLoad:
    """Survivors' load in steps of `step_s` from the failure until every client is back
    (figures back to full scale when the transient ran on `scale` of the clients)."""
    up = 1.0 / scale
    survivors = [j for j in range(sc.nodes) if j not in sc.failed and j not in sc.down_before]
    back = result.outage_s < HORIZON_CAP_S
    end = float(result.outage_s[back].max()) if back.any() else 0.0
    edges = np.arange(0.0, end + 2 * step_s, step_s)
    steps = len(edges) - 1
    t = edges[:-1]
    n = len(result.outage_s)
    n_sub = int(round(n * sc.subscriber_fraction))
    is_sub = np.arange(n) < n_sub  # the transient's convention: subscribers first
    # Offline sessions and their queues, spread over the survivors.
    waiting = result.session_present & back
    out_at = [np.histogram(result.outage_s[waiting & s], edges)[0] for s in (is_sub, ~is_sub)]
    still_sub = int((waiting & is_sub).sum()) - np.cumsum(out_at[0])
    still_pub = int((waiting & ~is_sub).sum()) - np.cumsum(out_at[1])
    queued_each = np.minimum(sc.publish_per_s * (t + step_s), MAX_MQUEUE)
    per_survivor = up / max(len(survivors), 1)
    offline = (still_sub + still_pub) * per_survivor
    queued = still_sub * queued_each * per_survivor
    cpu = np.zeros((len(survivors), steps))
    mem = np.zeros((len(survivors), steps))
    conns = np.zeros((len(survivors), steps))
    for i, j in enumerate(survivors):
        arrivals = np.histogram(result.outage_s[back & (result.final_node == j)], edges)[0] * up
        c = result.initial_counts[j] * up + np.cumsum(arrivals)
        load = NodeLoad(connections=c, subscriptions=c * sc.subscriber_fraction,
                        offline_sessions=offline, queued_messages=queued,
                        msgs_in_per_s=c * sc.subscriber_fraction * sc.publish_per_s,
                        msgs_out_per_s=c * sc.subscriber_fraction * sc.publish_per_s,
                        connects_per_s=arrivals / step_s)
        cpu[i], mem[i], conns[i] = load.cpu_cores(costs), load.memory_bytes(costs), c
    return SurvivorLoad(t, cpu, mem, conns, end, int(round((~back).sum() * up)))


def storm_figures(load: SurvivorLoad, size: NodeSize, step_s: float = 1.0) -> dict[str, float]:
    """The figures a planner reads: peaks against the VM, the alarm, the time to all back."""
    alarm = load.alarm_cpu(step_s) / size.vcpu
    return {
        "peak_cpu_fraction": load.peak_cpu() / size.vcpu,
        "alarm_cpu_fraction": alarm,
        "cpu_alarm_fires": alarm > CPU_ALARM,
        "peak_memory_fraction": load.peak_memory() / size.memory_bytes,
        "peak_connections": float(load.connections.max()),
        "all_back_s": load.all_back_s,
        "never_back": load.never_back,
    }
