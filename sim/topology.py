"""The topology's model: one pydantic model is validation, defaults and JSON schema.

A component or failure mode the spec leaves out is absent (never fails). Units are in key names.
Reading files, extends and the one-line errors are sim/spec.py's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.distributions import HOUR, Dist, Exponential
from sim.redundancy import mean_time_to_loss

PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
YEAR_S = 365.25 * 24 * HOUR

NODE_MODES = ("crash", "vm", "hang", "disk", "partition")


class SpecError(ValueError):
    """A spec mistake, already phrased as one line for the user."""


class _Model(BaseModel):
    # strict: `nodes = true` is not 1 and "3" is not 3 (an int still counts as a float)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Meta(_Model):
    name: str = Field(min_length=1)
    description: str = ""


class Targets(_Model):
    availability: Fraction | None = None
    rto_minutes: PosFloat | None = None
    rpo_minutes: NonNegFloat | None = None


class Simulation(_Model):
    years: Annotated[float, Field(ge=0.001, le=1e9, allow_inf_nan=False,
                                  description="per replication (at least 0.001: 8.8 hours)")] = 1000
    replications: Annotated[int, Field(ge=2, le=100_000)] = 20
    seed: Annotated[int, Field(ge=0)] = 1
    start: Literal["stationary", "new"] = Field(
        "stationary", description="stationary: components at equilibrium ages, some down (the long "
        "run); new: all new and up at t = 0 (the first years after a rollout)")


class Redundancy(_Model):
    """Redundant parts behind one failure mode (RAID disks, network paths): the mode's
    `mtbf_hours` is one part's, and the mode strikes when more than `tolerates` of `units` are
    down at once (sim/redundancy.py)."""

    units: Annotated[int, Field(ge=2, le=16)]
    tolerates: Annotated[int, Field(ge=0, le=15, description="0: any part lost is fatal (RAID 0)")] = 1
    unit_repair_hours: Annotated[float, Field(gt=0, le=1e5, allow_inf_nan=False,
                                              description="rebuild / repair of one part (mean)")]

    @model_validator(mode="after")
    def _check(self) -> Redundancy:
        if self.tolerates >= self.units:
            raise ValueError(f"redundancy.tolerates = {self.tolerates}: must be < units ({self.units})")
        return self


class FailureMode(_Model):
    """Time to failure (`mtbf_hours`, exponential, or a `ttf` table) and time to repair.

    With `redundancy`, `mtbf_hours` is one part's and the mode's time to failure is the exact mean
    time until more parts are down than the component survives; `repair` then is the component's.
    A mode's clock runs only while its component is up: it does not age while down.
    """

    mtbf_hours: Annotated[float, Field(gt=0, le=1e8, allow_inf_nan=False,
                                       description="at most 1e8 h (11,000 years)")] | None = None
    ttf: Dist | None = None
    redundancy: Redundancy | None = None
    repair: Dist
    crew: bool = Field(True, description="repair needs one of cluster.repair_crews (if > 0)")

    @model_validator(mode="after")
    def _one_ttf(self) -> FailureMode:
        if (self.mtbf_hours is None) == (self.ttf is None):
            raise ValueError("give exactly one of mtbf_hours, ttf")
        if self.redundancy is not None and self.mtbf_hours is None:
            raise ValueError("redundancy needs mtbf_hours (one part's, exponential), not ttf")
        return self

    def ttf_dist(self):
        if self.ttf is not None:
            return self.ttf.frozen()
        mean = self.mtbf_hours
        if self.redundancy is not None:
            r = self.redundancy
            mean = mean_time_to_loss(r.units, r.tolerates, mean, r.unit_repair_hours)
        return Exponential(dist="exponential", mean_hours=mean).frozen()

    def mttf_s(self) -> float:
        return float(self.ttf_dist().mean())

    def mttr_s(self) -> float:
        return self.repair.mean_seconds()


class NodeFailures(_Model):
    crash: FailureMode | None = Field(None, description="process crash: connections reset at once")
    vm: FailureMode | None = Field(None, description="VM/host loss: connections vanish silently")
    hang: FailureMode | None = Field(None, description="grey failure: TCP accepts, MQTT does not")
    disk: FailureMode | None = Field(None, description="disk loss: node down until rebuilt")
    partition: FailureMode | None = Field(None, description="node cut off from clients and peers")

    def modes(self) -> dict[str, FailureMode]:
        return {m: getattr(self, m) for m in NODE_MODES if getattr(self, m) is not None}


class Node(_Model):
    failure: NodeFailures = NodeFailures()


class Cluster(_Model):
    nodes: Annotated[int, Field(ge=1, le=64)]
    min_nodes_up: Annotated[int, Field(ge=1)] = 1
    sessions: Literal["memory", "durable"] = "memory"
    replication_factor: Annotated[int, Field(ge=1, le=64)] = 3
    repair_crews: Annotated[int, Field(ge=0)] = 0
    max_conn_rate_per_s: PosFloat | None = Field(None, description="per node; none = unlimited")
    listen_backlog: Annotated[int, Field(ge=1)] = Field(1024, description="accept queue per node")
    max_connections: Annotated[int, Field(ge=1)] | None = Field(None, description="per node")
    overload_connections: Annotated[int, Field(ge=1)] | None = Field(
        None, description="a node holding more connections than this crashes (cascade)"
    )
    dist_net_ticktime_s: Annotated[float, Field(ge=5, le=3600)] = Field(
        120, description="EMQX node.dist_net_ticktime: how long the cluster counts a silent node "
        "as up (survivors wait that long to take its sessions over; FACTS)"
    )
    vm: str | None = Field(None, description="a node's Azure size (sim/data/azure-vms.toml): "
                           "its vCPU, memory and flow limit")
    vcpu: PosFloat | None = Field(None, description="a node's size without a catalogue entry")
    memory_gib: PosFloat | None = None
    flows_per_node: Annotated[int, Field(ge=1)] | None = Field(
        None, description="with vcpu / memory_gib: connections the host's network takes")
    load_costs: str | None = Field(None, min_length=1, description="a load-cost file (twin "
                                   "calibrate of load runs), relative to the topology file")
    load_costs_bound: Literal["value", "high"] = Field(
        "value", description="each cost at its value or at its 95 % interval's upper end")
    cpu_headroom: Annotated[float, Field(gt=0, le=1)] = Field(
        0.75, description="CPU a node may use at steady state (EMQX: ~75 % is normal daily load)")

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        if self.min_nodes_up > self.nodes:
            raise ValueError(
                f"cluster.min_nodes_up = {self.min_nodes_up}: must be <= cluster.nodes ({self.nodes})"
            )
        if self.vm is not None:
            from sim.resources import vm_catalogue

            if self.vm not in vm_catalogue():
                raise ValueError(f"cluster.vm = {self.vm!r}: allowed {', '.join(vm_catalogue())}")
            if self.vcpu is not None or self.memory_gib is not None:
                raise ValueError("cluster.vcpu / memory_gib: give either cluster.vm or both of them")
        elif (self.vcpu is None) != (self.memory_gib is None):
            raise ValueError("cluster.vcpu / memory_gib: give both (or cluster.vm)")
        if (self.vm is not None or self.vcpu is not None) and self.load_costs is None:
            raise ValueError("cluster.load_costs: required with a node size (a load-cost file, "
                             "e.g. calibration/emqx-5.8.9-load-facts.json)")
        return self


class Probe(_Model):
    protocol: Literal["tcp", "http", "mqtt"] = "tcp"
    interval_s: PosFloat = 5
    threshold: Annotated[int, Field(ge=1, le=100)] = 1
    on_down: Literal["continue", "reset"] = Field(
        "continue", description="established flows when a backend is marked down (Azure: continue)"
    )


class LoadBalancer(_Model):
    algorithm: Literal["least_connections", "source_ip", "five_tuple", "round_robin"]
    persistence: Literal["none", "client_ip"] = "none"
    probe: Probe = Probe()
    idle_timeout_minutes: Annotated[float, Field(ge=4, le=100)] = 4
    # What a least-connections LB counts (read under least_connections only; the hash modes count
    # nothing). 0 and 0: only live flows, an ideal LB. HAProxy, the lab's LB: 90 and 20.
    holds_closed_s: NonNegFloat = Field(0.0, description=(
        "a hung or cut-off node never closes a connection its client left: the LB counts it this "
        "long (HAProxy: timeout server)"))
    connect_hold_s: NonNegFloat = Field(0.0, description=(
        "the LB keeps connecting to a node whose address is gone this long after the client gave "
        "up (HAProxy: (retries + 1) x timeout connect)"))
    failure: FailureMode | None = None


class Reconnect(_Model):
    initial_s: PosFloat = 1
    max_s: PosFloat = 120
    multiplier: Annotated[float, Field(ge=1)] = 2
    jitter: Literal["none", "full", "equal", "decorrelated"] = "none"

    @model_validator(mode="after")
    def _check(self) -> Reconnect:
        if self.max_s < self.initial_s:
            raise ValueError(
                f"clients.reconnect.max_s = {self.max_s}: must be >= initial_s ({self.initial_s})"
            )
        return self


class Clients(_Model):
    count: Annotated[int, Field(ge=0, le=100_000_000)] = 0
    keepalive_s: Annotated[float, Field(gt=0, le=65535, allow_inf_nan=False,
                                        description="MQTT allows at most 65535 s")] = 60
    qos: Literal[0, 1, 2] = 1
    publish_per_s: NonNegFloat = 0.0
    subscriber_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    sites: Annotated[int, Field(ge=1)] = 100
    connect_timeout_s: PosFloat = 5
    session_expiry_s: NonNegFloat = 7200
    reconnect: Reconnect = Reconnect()


class Region(_Model):
    name: str = Field(min_length=1)
    nodes: Annotated[int, Field(ge=1, le=64)] | None = None
    weight: PosFloat = 1.0
    outage: FailureMode | None = None


class DisasterRecovery(_Model):
    mode: Literal["active_active", "active_passive"]
    failover: Dist = Field(description="time to move a region's traffic to a working region")
    replication_lag: Dist | None = Field(None, description="age of data not yet in the other region")
    sessions_replicated: bool = Field(False, description="Cluster Linking does not move sessions")
    backup_interval_hours: NonNegFloat | None = Field(
        None, description="cluster configuration backups: a restore loses the changes since the "
        "last one (0: every change is committed before it is applied, e.g. config as code)")
    restore: Dist | None = Field(None, description="rebuilding a region from its backups "
                                 "(scripts): the RTO when no working region takes the traffic")


class Maintenance(_Model):
    kind: Literal["rolling", "hot_patch"] = "rolling"
    interval_days: PosFloat
    per_node: Dist
    evacuate: bool = False


class CorrelatedFailure(_Model):
    name: str = Field(min_length=1)
    mtbf_hours: PosFloat
    nodes: Annotated[int, Field(ge=1)]
    repair: Dist


class CalibrationRef(_Model):
    """Lab-fitted transients (models/calibration/*.json): `outages` draws the lab's own client
    outages (valid only for the lab's client and LB settings); `mechanism` runs the model with
    the broker behaviour the lab measured (session takeover hold, refusals, CONNACK latency,
    loss the model does not explain), scaled to this topology's tick time."""

    file: str = Field(min_length=1, description="relative to the topology file")
    use: Literal["outages", "mechanism"] = "outages"


class Uncertain(_Model):
    """An input known only to lie in a range (studies/sensitivity.py varies it there)."""

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    log: bool = Field(False, description="vary on a log scale (rates that span decades)")
    reason: str = Field(min_length=1, description="where the range comes from: FACTS or 'assumption'")

    @model_validator(mode="after")
    def _check(self) -> Uncertain:
        if not self.low < self.high:
            raise ValueError(f"low = {self.low}: must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"low = {self.low}: must be > 0 on a log scale")
        return self


class Spec(_Model):
    meta: Meta
    targets: Targets = Targets()
    simulation: Simulation = Simulation()
    cluster: Cluster
    node: Node = Node()
    lb: LoadBalancer | None = None
    clients: Clients = Clients()
    regions: list[Region] = Field(default_factory=list)
    dr: DisasterRecovery | None = None
    maintenance: Maintenance | None = None
    correlated: list[CorrelatedFailure] = Field(default_factory=list)
    calibration: CalibrationRef | None = None
    uncertainty: dict[str, Uncertain] = Field(
        default_factory=dict, description="dotted key -> range, for twin sensitivity")

    @model_validator(mode="after")
    def _check(self) -> Spec:
        names = [r.name for r in self.regions]
        if len(set(names)) != len(names):
            raise ValueError(f"regions.name: duplicate names {names}")
        for i, n in enumerate(self.region_sizes()):
            if self.cluster.min_nodes_up > n:
                raise ValueError(
                    f"regions.{i}.nodes = {n}: must be >= cluster.min_nodes_up "
                    f"({self.cluster.min_nodes_up})"
                )
            for c in self.correlated:
                if c.nodes > n:
                    raise ValueError(f"correlated.nodes = {c.nodes}: must be <= nodes per region ({n})")
        if len(self.regions) > 1 and self.dr is None:
            raise ValueError("dr: required when there is more than one region")
        return self

    def region_sizes(self) -> list[int]:
        if not self.regions:
            return [self.cluster.nodes]
        return [r.nodes or self.cluster.nodes for r in self.regions]

    def region_names(self) -> list[str]:
        return [r.name for r in self.regions] or ["main"]
