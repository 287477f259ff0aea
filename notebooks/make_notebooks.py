"""Writes notebooks/what-if.ipynb and notebooks/capacity-planning.ipynb (run it, then execute
them: `jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb`). The cells are the
product; this file only keeps them reviewable as code."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''import os
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

from sim.spec import load_spec

ROOT = Path.cwd() if (Path.cwd() / "models").is_dir() else Path.cwd().parent
# TWIN_NOTEBOOK_BUDGET=small (CI): 10 years x 2 replications per design, enough to run every cell;
# the default runs the reference's own budget (1,000 years x 20). Results are cached in out/cache.
SMALL = os.environ.get("TWIN_NOTEBOOK_BUDGET", "full") == "small"
reference = load_spec(ROOT / "models" / "renata-reference.toml")
if SMALL:
    reference = reference.model_copy(update={"simulation": reference.simulation.model_copy(
        update={"years": 10, "replications": 2})})
sim = reference.simulation
print(f"budget: {sim.years:g} years x {sim.replications} replications per design, seed {sim.seed}")
pd.set_option("display.width", 140)'''

WHAT_IF = [
    new_markdown_cell('''# What if: the design choices of the HA design, one at a time

Each variant changes one thing in `models/renata-reference.toml` (the design as written) and runs
with the same random failure histories (common random numbers), so a difference is the design's,
not the dice's: each comes with its 95 % confidence interval, and "no difference shown" when that
interval contains 0. Downtime is minutes per year: service (the region serves), client-weighted
(what a device lives through, reconnects included), and messages lost per million.'''),
    new_code_cell(SETUP),
    new_code_cell('''from studies import apply, compare

VARIANTS = {
    "4 nodes": {"cluster.nodes": 4},
    "5 nodes": {"cluster.nodes": 5},
    "durable sessions": {"cluster.sessions": "durable"},
    "HTTP probe": {"lb.probe.protocol": "http"},
    "HTTP probe + reset on down": {"lb.probe.protocol": "http", "lb.probe.on_down": "reset"},
    "MQTT probe": {"lb.probe.protocol": "mqtt"},
    "MQTT probe + reset on down": {"lb.probe.protocol": "mqtt", "lb.probe.on_down": "reset"},
    "Azure LB: 5-tuple hash": {"lb.algorithm": "five_tuple", "lb.persistence": "none"},
    "Azure LB: source-IP hash": {"lb.algorithm": "source_ip", "lb.persistence": "none"},
    "active-passive": {"dr.mode": "active_passive"},
    "maintenance with evacuation": {"maintenance.evacuate": True},
}
designs = [reference.model_copy(update={"meta": reference.meta.model_copy(update={"name": "as written"})})]
designs += [apply(reference, changes, name=name) for name, changes in VARIANTS.items()]
one_region = load_spec(ROOT / "models" / "topologies" / "single-region-3.toml")
designs.append(one_region.model_copy(update={"meta": one_region.meta.model_copy(update={"name": "one region"})}))
df = compare(designs)
paired = df[df["zero_in_ci"].notna()]
wide = paired.pivot(index="design", columns="metric", values="value").loc[[d.meta.name for d in designs]]
wide.round(3)'''),
    new_markdown_cell("## Differences to the design as written (95 % CI)"),
    new_code_cell('''from studies import forest_plot

path = forest_plot(df[df["metric"].isin(["service downtime", "client-weighted downtime", "messages lost"])],
                   ROOT / "out" / "what-if-forest.png")
display(Image(filename=str(path)))'''),
    new_code_cell('''def line(metric: str) -> pd.DataFrame:
    sub = paired[paired["metric"] == metric].set_index("design")
    return sub[["value", "diff", "diff_lo", "diff_hi", "zero_in_ci"]]

client = line("client-weighted downtime")
service = line("service downtime")
client.round(2)'''),
    new_markdown_cell("## Conclusion, from the numbers above"),
    new_code_cell('''base = client.loc["as written", "value"]
better = client[(~client["zero_in_ci"]) & (client["diff"] < 0)].sort_values("diff")
worse = client[(~client["zero_in_ci"]) & (client["diff"] > 0)].sort_values("diff", ascending=False)
best = better.index[0] if len(better) else None
budget = (1 - reference.targets.availability) * 525_960
text = [f"- As written, a device is disconnected **{base:.1f} min a year** (budget {budget:.2f} min "
        f"for five nines); the service itself is down {service.loc['as written', 'value']:.2f} min/yr."]
if best:
    text.append(f"- The largest shown improvement is **{best}**: {client.loc[best, 'value']:.1f} min/yr "
                f"({client.loc[best, 'diff']:+.1f}, 95 % CI {client.loc[best, 'diff_lo']:+.1f} .. "
                f"{client.loc[best, 'diff_hi']:+.1f}).")
text.append("- Shown better for devices: " + (", ".join(better.index) or "none") + ".")
text.append("- Shown worse for devices: " + (", ".join(worse.index) or "none") + ".")
same = client[client["zero_in_ci"]].index.drop("as written", errors="ignore")
text.append("- No difference shown (the interval contains 0): " + (", ".join(same) or "none") + ".")
meets = client[client["value"] <= budget].index
text.append("- Variants within the five-nines budget for devices: " + (", ".join(meets) or
            "**none**: no single change makes the design meet five nines as devices see it") + ".")
if SMALL:
    text.append("- *(small budget: 10 years x 2 replications per design; rerun without "
                "TWIN_NOTEBOOK_BUDGET=small for the figures to decide on)*")
display(Markdown("\\n".join(text)))
print("conclusion drawn from", len(designs), "designs")'''),
]

CAPACITY = [
    new_markdown_cell('''# Capacity planning: nodes and VM sizes per region as the fleet grows

For each fleet size on the growth path (100 k, 1 M, 10 M devices) and each Azure size (D4s_v5,
D8s_v5, D16s_v5), the smallest number of EMQX nodes per region whose survivors hold the load
after one node is lost (N-1) and after two (N-2): CPU within the planning headroom (75 %), memory
within EMQX's alarm (70 %), connections within the VM's 500,000 flows, every device back after
the reconnect storm and no survivor out of memory in it. What a connection, a message and a
connect cost comes from the topology's load-cost file (`cluster.load_costs`: EMQX's published and
measured figures until EMQX load-lab runs replace them); the placement and the storm from the
failover model with the topology's own LB and devices. The assumed `overload_connections` is set
aside: the plan derives each node's limits from its size.'''),
    new_code_cell(SETUP),
    new_code_cell('''from studies import apply
from studies.vm_plan import plan
from studies.vm_plot import plot

GROWTH = [100_000, 1_000_000, 10_000_000]
VMS = ["D4s_v5", "D8s_v5", "D16s_v5"]
base = apply(reference, {"cluster.overload_connections": None}, name=reference.meta.name)
table = plan(base, GROWTH, VMS, max_nodes=16)
display(Image(filename=str(plot(table, ROOT / "out" / "capacity-planning.png",
                                 "renata-reference: nodes per region from EMQX's load costs",
                                 base.cluster.cpu_headroom))))
table[["devices", "vm", "nodes_n_minus_1", "nodes_n_minus_2", "n_minus_2_binding",
       "n_minus_2_cpu", "n_minus_2_memory", "n_minus_2_flows",
       "n_minus_2_storm_alarm_cpu_fraction", "n_minus_2_storm_all_back_s"]].round(2)'''),
    new_markdown_cell('''## Message rate: the same growth path at 1 message per device per second

The design gives no rate; the reference assumes 0.2 msg/s per subscriber. Five times that:'''),
    new_code_cell('''busy = apply(base, {"clients.publish_per_s": 1.0}, name="1 msg/s")
busy_table = plan(busy, GROWTH, VMS, max_nodes=16)
busy_table[["devices", "vm", "nodes_n_minus_2", "n_minus_2_binding", "n_minus_2_cpu",
            "n_minus_2_storm_alarm_cpu_fraction"]].round(2)'''),
    new_markdown_cell('''## Is the cautious plan different? Every cost at its interval's upper end'''),
    new_code_cell('''cautious = plan(base, GROWTH, VMS, max_nodes=16, upper=True)
cautious[["devices", "vm", "nodes_n_minus_2", "n_minus_2_binding", "n_minus_2_cpu"]].round(2)'''),
    new_markdown_cell("## Availability of the cheapest size per fleet (fewest vCPU per region)"),
    new_code_cell('''from sim.resources import vm_catalogue
from studies import compare


def cheapest(t):
    ok = t.dropna(subset=["nodes_n_minus_2"]).assign(
        vcpu=lambda d: d["nodes_n_minus_2"] * d["vm"].map(lambda v: vm_catalogue()[v].vcpu))
    return ok.sort_values(["devices", "vcpu", "nodes_n_minus_2"]).groupby("devices").head(1)


choice = cheapest(table)
designs = [apply(base, {"clients.count": int(r.devices), "cluster.nodes": int(r.nodes_n_minus_2),
                        "cluster.vm": r.vm},
                 name=f"{r.devices / 1e6:g} M devices on {int(r.nodes_n_minus_2)} x {r.vm}")
           for r in choice.itertuples() if r.devices <= 1_000_000]
avail = compare(designs)
avail_table = avail[avail["metric"].isin(["service downtime", "client-weighted downtime"])].pivot(
    index="design", columns="metric", values="value").loc[[d.meta.name for d in designs]]
avail_table.round(3)'''),
    new_markdown_cell("## Conclusion, from the numbers above"),
    new_code_cell('''lines = []
for r in choice.itertuples():
    lines.append(f"- **{r.devices:,} devices: {int(r.nodes_n_minus_2)} x {r.vm} per region** "
                 f"(fewest vCPU that holds N-2; binding: {r.n_minus_2_binding}, busiest survivor "
                 f"at {100 * r.n_minus_2_cpu:.0f} % of the CPU headroom after N-2, all devices back "
                 f"{r.n_minus_2_storm_all_back_s:.0f} s after the second loss).")
for d in GROWTH:
    if d not in set(choice["devices"]):
        lines.append(f"- **{d:,} devices: no size up to 16 nodes per region** holds N-2.")
alarm = table[table["nodes_n_minus_2"].notna() & (table["n_minus_2_storm_alarm_cpu_fraction"] > 0.8)]
lines.append("- EMQX's 80 % CPU alarm (60 s mean) fires through an N-2 storm, at the planned "
             "sizes, for: " + (", ".join(f"{r.devices:,} on {r.vm}" for r in alarm.itertuples())
                               or "none of them") + ".")
moved = busy_table.set_index(["devices", "vm"])["nodes_n_minus_2"].compare(
    table.set_index(["devices", "vm"])["nodes_n_minus_2"])
lines.append(f"- At 1 msg/s per device the plan changes for {len(moved)} of {len(table)} "
             "fleet x VM cells" + (": " + ", ".join(f"{d:,} on {v}" for d, v in moved.index)
                                   if len(moved) else "") + ".")
shifted = cautious.set_index(["devices", "vm"])["nodes_n_minus_2"].compare(
    table.set_index(["devices", "vm"])["nodes_n_minus_2"])
lines.append(f"- With every cost at its upper bound {len(shifted)} cells change: the plan "
             + ("rests on the costs' point values; measure EMQX in the load lab before buying."
                if len(shifted) else "does not depend on where in their intervals the costs are."))
budget = (1 - reference.targets.availability) * 525_960
within = avail_table[avail_table["client-weighted downtime"] <= budget].index
lines.append("- Sizes within the five-nines budget for devices: " + (", ".join(within) or
             f"**none** ({budget:.2f} min/yr): sizing does not fix what devices live through") + ".")
if SMALL:
    lines.append("- *(small budget: 10 years x 2 replications per design)*")
display(Markdown("\\n".join(lines)))
print("plan:", {int(r.devices): f"{int(r.nodes_n_minus_2)} x {r.vm}" for r in choice.itertuples()})'''),
]


def main() -> None:
    for name, cells in (("what-if.ipynb", WHAT_IF), ("capacity-planning.ipynb", CAPACITY)):
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3",
                                                                "display_name": "Python 3",
                                                                "language": "python"}})
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
