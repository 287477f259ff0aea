"""What a node's load costs it, and what a node can give: CPU and memory from a load-cost file
(`twin calibrate` of load-lab runs, or EMQX's facts), a node's size from the VM catalogue.

Steady state is arithmetic: memory = base + connections x c + subscriptions x c + offline
sessions x c + queued messages x c; CPU = base + messages in/out per s x c + connects per s x c.
A cost the file does not give (null: not measured) counts as 0 and is named in `missing`.

Assumption (stated once, here): a cost measured in core-seconds on the lab's cores holds on a VM's
vCPU, and a VM with v vCPU supplies v core-seconds per second. `published_points` sets this
beside EMQX's own published measurements.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.spec import Spec

GIB = 1024 ** 3
CPU_ALARM = 0.80  # EMQX high_cpu_usage (FACTS); clears below 60 %
MEMORY_ALARM = 0.70  # EMQX high_system_memory_usage (FACTS): the planning limit for memory
SATURATED_CONNECT_SHARE = 0.05  # assumption: connects' share of a saturated node's CPU
MEMORY_TERMS = ("connections", "subscriptions", "offline_sessions", "queued_messages")
CPU_TERMS = ("msgs_in_per_s", "msgs_out_per_s", "connects_per_s")


class LoadCostsError(ValueError):
    """A load-cost file the model cannot use (one line)."""


@dataclass(frozen=True)
class Vm:
    name: str
    vcpu: float
    memory_gib: float
    flows: int


@cache
def vm_catalogue() -> dict[str, Vm]:
    """Azure sizes with their source (sim/data/azure-vms.toml)."""
    text = (resources.files("sim") / "data" / "azure-vms.toml").read_text(encoding="utf-8")
    return {name: Vm(name, float(v["vcpu"]), float(v["memory_gib"]), int(v["flows"]))
            for name, v in tomllib.loads(text)["vm"].items()}


@dataclass(frozen=True)
class LoadCosts:
    """Per-unit costs: bytes for memory terms, core-seconds for CPU terms."""

    name: str
    base_memory: float
    base_cpu: float
    memory: dict[str, float]
    cpu: dict[str, float]
    missing: tuple[str, ...] = ()
    standin: bool = False
    bound: str = "value"  # "value" or "high": the 95 % interval's upper end
    high: dict[str, float] = field(default_factory=dict, repr=False)

    def upper(self) -> LoadCosts:
        """Every cost at the upper end of its interval (a cautious plan)."""
        h = self.high
        return replace(self, bound="high", base_memory=h.get("base_memory", self.base_memory),
                       base_cpu=h.get("base_cpu", self.base_cpu),
                       memory={k: h.get(k, v) for k, v in self.memory.items()},
                       cpu={k: h.get(k, v) for k, v in self.cpu.items()})


def load_costs(path: str | Path, qos: int | None = None) -> LoadCosts:
    """A `kind = "load_costs"` file; with `qos`, the per-leg message costs of that QoS where the
    file gives them (`by_qos_per_leg_s`: [measured here, published])."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LoadCostsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise LoadCostsError(f"{path}: not a load-cost file ({type(err).__name__})") from None
    if not isinstance(data, dict) or data.get("kind") != "load_costs":
        raise LoadCostsError(f"{path}: kind = {data.get('kind') if isinstance(data, dict) else None!r}"
                             ": not a load-cost file (make one with twin calibrate of load runs)")
    values: dict[str, float] = {}
    high: dict[str, float] = {}
    missing = []
    for part, base in (("memory", "base_memory"), ("cpu", "base_cpu")):
        coeffs = data.get(part, {}).get("coefficients")
        if not isinstance(coeffs, dict):
            raise LoadCostsError(f"{path}: {part}.coefficients missing")
        for term in (base, *(MEMORY_TERMS if part == "memory" else CPU_TERMS)):
            c = coeffs.get(term) or {}
            v = c.get("value")
            if v is None:
                missing.append(term)
                continue
            values[term] = float(v)
            ci = c.get("ci95")
            high[term] = float(max(ci)) if ci else float(v)
    by_qos = data.get("cpu", {}).get("by_qos_per_leg_s", {})
    if qos is not None and str(qos) in by_qos:
        legs = [x for x in by_qos[str(qos)] if x is not None]
        for term in ("msgs_in_per_s", "msgs_out_per_s"):
            values[term] = float(legs[0])
            high[term] = max(high.get(term, 0.0), *legs)
    prov = data.get("provenance", {})
    return LoadCosts(
        name=str(data.get("name", path.stem)),
        base_memory=values.get("base_memory", 0.0), base_cpu=values.get("base_cpu", 0.0),
        memory={t: values.get(t, 0.0) for t in MEMORY_TERMS},
        cpu={t: values.get(t, 0.0) for t in CPU_TERMS}, missing=tuple(missing),
        standin=bool(prov.get("standin", False)), high=high)


@dataclass(frozen=True)
class NodeSize:
    vcpu: float
    memory_bytes: float
    flows: int | None
    cpu_headroom: float = 0.75  # planning limit at steady state (EMQX: ~75 % is normal daily load)
    name: str = ""

    def limits(self) -> dict[str, float]:
        """What a plan may use: CPU up to the headroom, memory up to EMQX's alarm, flows all."""
        out = {"cpu": self.vcpu * self.cpu_headroom, "memory": self.memory_bytes * MEMORY_ALARM}
        if self.flows is not None:
            out["flows"] = float(self.flows)
        return out


def node_size(spec: Spec) -> NodeSize | None:
    """The node's size from `cluster.vm` or its explicit vcpu / memory_gib."""
    c = spec.cluster
    if c.vm is not None:
        v = vm_catalogue()[c.vm]
        return NodeSize(v.vcpu, v.memory_gib * GIB, v.flows, c.cpu_headroom, c.vm)
    if c.vcpu is None:
        return None
    return NodeSize(c.vcpu, c.memory_gib * GIB, c.flows_per_node, c.cpu_headroom,
                    f"{c.vcpu:g} vCPU / {c.memory_gib:g} GiB")


@dataclass
class NodeLoad:
    connections: float = 0.0
    subscriptions: float = 0.0
    offline_sessions: float = 0.0
    queued_messages: float = 0.0
    msgs_in_per_s: float = 0.0
    msgs_out_per_s: float = 0.0
    connects_per_s: float = 0.0

    def memory_bytes(self, costs: LoadCosts) -> float:
        return costs.base_memory + sum(getattr(self, t) * costs.memory[t] for t in MEMORY_TERMS)

    def cpu_cores(self, costs: LoadCosts) -> float:
        return costs.base_cpu + sum(getattr(self, t) * costs.cpu[t] for t in CPU_TERMS)

    def usage(self, costs: LoadCosts) -> dict[str, float]:
        return {"cpu": self.cpu_cores(costs), "memory": self.memory_bytes(costs),
                "flows": self.connections}


def steady_load(spec: Spec, connections: float) -> NodeLoad:
    """A node holding `connections` of the spec's clients: a subscription per subscriber, each
    subscriber receiving `publish_per_s`, each message published once and delivered once (the
    lab's pairs: as many messages in as out; an assumption for fan-out)."""
    cl = spec.clients
    subs = connections * cl.subscriber_fraction
    rate = subs * cl.publish_per_s
    return NodeLoad(connections=connections, subscriptions=subs, msgs_in_per_s=rate,
                    msgs_out_per_s=rate)


def utilisation(load: NodeLoad, size: NodeSize, costs: LoadCosts) -> dict[str, float]:
    """Each resource's use as a fraction of its planning limit (1 = at the limit)."""
    use = load.usage(costs)
    return {k: use[k] / lim for k, lim in size.limits().items()}


def binding(util: dict[str, float]) -> str:
    return max(util, key=lambda k: util[k])


def admission_rate_per_s(spec: Spec, size: NodeSize, costs: LoadCosts, connections: float
                         ) -> float:
    """Connects per second a survivor's CPU allows beside its steady load at `connections`:
    the whole VM (not the headroom) goes to a storm. A survivor its steady load saturates still
    gives connects SATURATED_CONNECT_SHARE of its CPU (an assumption)."""
    per_connect = costs.cpu["connects_per_s"]
    if per_connect <= 0:
        return float("inf")
    spare = size.vcpu - steady_load(spec, connections).cpu_cores(costs)
    return max(spare, SATURATED_CONNECT_SHARE * size.vcpu) / per_connect


def memory_connection_limit(spec: Spec, size: NodeSize, costs: LoadCosts) -> int:
    """Connections (with their subscriptions) at which a node's memory is all used: past it the
    node dies (the cascade path's `overload_connections`)."""
    per = costs.memory["connections"] + spec.clients.subscriber_fraction * \
        costs.memory["subscriptions"]
    if per <= 0:
        return 2 ** 62
    return max(int((size.memory_bytes - costs.base_memory) / per), 1)


def spec_costs(spec: Spec) -> LoadCosts | None:
    c = spec.cluster
    if not c.load_costs:
        return None
    costs = _cached_costs(c.load_costs, spec.clients.qos)
    return costs.upper() if c.load_costs_bound == "high" else costs


@cache
def _cached_costs(path: str, qos: int) -> LoadCosts:
    return load_costs(path, qos)


def derived_limits(spec: Spec, connections_after: float, scale: float = 1.0
                   ) -> tuple[float | None, int | None, bool]:
    """The admission rate and the overload point a sized node has when the spec sets neither
    (`max_conn_rate_per_s`, `overload_connections` win when set): the rate its spare CPU allows
    at the load it ends with (`connections_after`), the connections its memory holds; and
    whether the rate is the CPU's (then accepted sockets wait for CPU, not in a listen backlog).
    The rate is a constant: a survivor the LB gives more than `connections_after` (client-IP
    persistence piles sites up) asks more CPU than its VM has; the plan shows that demand."""
    c = spec.cluster
    size, costs = node_size(spec), spec_costs(spec)
    rate, overload = c.max_conn_rate_per_s, c.overload_connections
    from_cpu = False
    if size is not None and costs is not None:
        if rate is None:
            r = admission_rate_per_s(spec, size, costs, connections_after)
            rate, from_cpu = (None, False) if r == float("inf") else (r, True)
        if overload is None:
            overload = memory_connection_limit(spec, size, costs)
    if scale != 1.0:
        rate = rate * scale if rate is not None else None
        overload = max(1, round(overload * scale)) if overload is not None else None
    return rate, overload, from_cpu


def survivor_resources(spec: Spec, connections: float) -> dict[str, Any] | None:
    """A survivor holding `connections` at steady state: its CPU and memory demand and, for a
    sized node, each resource's share of its planning limit and the limits it breaks."""
    costs = spec_costs(spec)
    if costs is None:
        return None
    load = steady_load(spec, connections)
    out: dict[str, Any] = {"cpu_cores": load.cpu_cores(costs),
                           "memory_bytes": load.memory_bytes(costs), "costs": costs.name,
                           "missing": list(costs.missing)}
    size = node_size(spec)
    if size is not None:
        util = utilisation(load, size, costs)
        out.update(node=size.name, utilisation=util, binding=binding(util),
                   broken=sorted(k for k, u in util.items() if u > 1.0))
    return out


def hard_limits_broken(spec: Spec) -> str | None:
    """What a sized node cannot hold at all, with the clients spread evenly, with every node up
    and after each loss down to `min_nodes_up` (CPU beyond its vCPU, memory beyond the VM's,
    connections beyond its flows): one line, or None. In such a design the storm after that loss
    never ends (every retry waits for a saturated CPU, the transient runs to its 48 h cap): the
    answer is known without simulating it."""
    size, costs = node_size(spec), spec_costs(spec)
    if size is None or costs is None or not spec.clients.count:
        return None
    from sim.pools import region_clients

    have = {"cpu": size.vcpu, "memory": size.memory_bytes, "flows": size.flows or float("inf")}
    deepest = max(spec.region_sizes()) - spec.cluster.min_nodes_up
    for lost in range(deepest + 1):
        when = "with every node up" if not lost else (
            f"after {lost} node loss{'es' if lost > 1 else ''}" + (
                f" (cluster.min_nodes_up = {spec.cluster.min_nodes_up}: the service runs on)"
                if lost == deepest else ""))
        per_node = max(c / max(n - lost, 1) for c, n in
                       zip(region_clients(spec), spec.region_sizes(), strict=True))
        use = steady_load(spec, per_node).usage(costs)
        broken = [k for k in have if use[k] > have[k]]
        if broken:
            return (f"{per_node:,.0f} connections per node {when} need {use['cpu']:.3g} cores "
                    f"and {use['memory'] / GIB:.3g} GiB; a {size.name} has {size.vcpu:g} vCPU, "
                    f"{size.memory_bytes / GIB:g} GiB and {size.flows or 'unlimited'} flows: "
                    f"broken: {', '.join(broken)} (twin capacity --vm plans nodes and sizes)")
    return None


def published_points(costs: LoadCosts) -> list[dict[str, Any]]:
    """EMQX's published measurements (docs/facts.md, Capacity) beside what these costs predict
    for them: the check on the scaling assumption above. `published_high` is the largest
    published figure (what the upper costs must reach)."""
    points = [  # what was published, its largest figure, the load, how to read the prediction
        ("1 M connections, 16 vCPU / 32 GB (EMQX 5.0.21)", "memory GB", "12.1 average, 16.1 max",
         16.1, NodeLoad(connections=1_000_000), lambda load, c: load.memory_bytes(c) / 1e9),
        ("1 M connections at 5 k connects/s, 16 vCPU", "CPU peak %", "52", 52.0,
         NodeLoad(connections=1_000_000, connects_per_s=5000),
         lambda load, c: 100 * load.cpu_cores(c) / 16),
        ("40 k msg/s in + out at QoS 1, 4 vCPU (5.1.6)", "CPU %", "about 75", 75.0,
         NodeLoad(msgs_in_per_s=20_000, msgs_out_per_s=20_000),
         lambda load, c: 100 * load.cpu_cores(c) / 4),
    ]
    return [{"point": point, "resource": resource, "published": text, "published_high": high,
             "predicted": read(load, costs), "predicted_high": read(load, costs.upper())}
            for point, resource, text, high, load, read in points]
