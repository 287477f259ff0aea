"""Capacity claims: figures from a plan on the topology's load costs (studies/vm_plan.py), at the
design's own size ("alarm") or along a growth path ("nodes")."""

from __future__ import annotations

from review.claims import Claim
from sim.resources import CPU_ALARM, spec_costs
from sim.spec import Spec
from studies.variants import apply
from studies.vm_plan import loss_figures, plan


def check_capacity(claim: Claim, spec: Spec) -> tuple[str, str]:
    if spec.cluster.load_costs is None:
        return "not checkable here", "the topology names no cluster.load_costs"
    base = apply(spec, {"cluster.overload_connections": None, "cluster.max_conn_rate_per_s": None},
                 name=spec.meta.name)
    if claim.question == "alarm":
        return _alarm(claim, base)
    return _nodes(claim, base)


def _alarm(claim: Claim, spec: Spec) -> tuple[str, str]:
    """Does EMQX's CPU alarm (60 s mean above 80 %) fire on a survivor when a node is lost, at
    the design's own fleet and nodes, on each VM size?"""
    parts, fires = [], []
    n = max(spec.region_sizes())
    for vm in claim.vms:
        s = apply(spec, {"cluster.vm": vm}, name=f"{spec.meta.name} on {vm}")
        costs = spec_costs(s)
        for lost in (1, 2):
            f = loss_figures(s, costs, lost) if n - lost >= 1 else None
            if f is None:
                continue
            a = f["storm"]["alarm_cpu_fraction"]
            if a > CPU_ALARM:
                fires.append(f"N-{lost} on {vm}")
            parts.append(f"N-{lost} {vm}: {100 * a:.0f} % (peak {100 * f['storm']['peak_cpu_fraction']:.0f} %)")
    figure = (f"busiest survivor's CPU, 60 s mean through the storm, {spec.clients.count:,} "
              f"devices on {n} nodes per region: " + "; ".join(parts) + f" (alarm above "
              f"{100 * CPU_ALARM:.0f} %)")
    verdict = "holds" if not fires else f"holds only if the VM is larger than on {', '.join(fires)}"
    return verdict, figure


def _nodes(claim: Claim, spec: Spec) -> tuple[str, str]:
    """Which fleet needs 4 or 5 nodes per region (N-2 holding), of which size; where 5 are not
    enough."""
    devices = claim.devices or [100_000, 250_000, 500_000, 1_000_000, 2_000_000, 5_000_000]
    table = plan(spec, devices, claim.vms, max_nodes=5)
    parts = []
    for vm in claim.vms:
        sub = table[table["vm"] == vm]
        fits = sub.dropna(subset=["nodes_n_minus_2"])
        steps = [f"{int(r.nodes_n_minus_2)} from {r.devices:,}" for r in
                 fits.drop_duplicates("nodes_n_minus_2").itertuples()]
        over = sub[sub["nodes_n_minus_2"].isna()]
        beyond = (f"; more than 5 from {over['devices'].min():,} ("
                  f"{over.iloc[0]['n_minus_2_binding']})") if len(over) else ""
        parts.append(f"{vm}: " + (", ".join(steps) or "none fits") + beyond)
    design = table[table["devices"] == spec.clients.count]
    three = design[design["nodes_n_minus_2"] <= max(spec.region_sizes())]
    verdict = "holds" if len(three) else "fails"
    return verdict, ("nodes per region that hold N-2 (devices, all regions): " + "; ".join(parts))
