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
    new_markdown_cell('''# Capacity planning: how many nodes per region as the fleet grows

For each fleet size on the growth path, the smallest number of EMQX nodes per region whose
survivors stay below their overload point after one node is lost (N-1) and after two (N-2), with
the reconnect storm of the lost nodes' devices inside the admission limit; then the availability
of each size the plan needs. The per-node limits come from the topology
(`cluster.overload_connections`, `cluster.max_conn_rate_per_s`); the loads from the failover model
with the topology's own LB and devices.'''),
    new_code_cell(SETUP),
    new_code_cell('''from studies.capacity import plot, size_table, smallest

GROWTH = [100_000, 250_000, 500_000, 1_000_000]
table = size_table(reference, GROWTH, list(range(3, 9)))
plan = smallest(table)
display(Image(filename=str(plot(table, ROOT / "out" / "capacity-planning.png",
                                 "renata-reference: nodes per region for N-1 and N-2"))))
plan'''),
    new_markdown_cell("## Availability of each size the plan needs"),
    new_code_cell('''from studies import apply, compare

sizes = sorted({int(n) for n in plan["nodes_per_region"].dropna()} | {3})
designs = [apply(reference, {"cluster.nodes": n}, name=f"{n} nodes") for n in sizes]
avail = compare(designs)
avail_table = avail[avail["metric"].isin(["service downtime", "client-weighted downtime"])].pivot(
    index="design", columns="metric", values="value").loc[[d.meta.name for d in designs]]
avail_table.round(3)'''),
    new_markdown_cell("## Conclusion, from the numbers above"),
    new_code_cell('''limit = reference.cluster.overload_connections
lines = []
for row in plan.itertuples():
    if row.nodes_per_region == row.nodes_per_region:
        n = int(row.nodes_per_region)
        t = table[(table["devices"] == row.devices) & (table["nodes_per_region"] == n)].iloc[0]
        lines.append(f"- **{row.devices:,} devices: {n} nodes per region** (after N-2 the busiest "
                     f"survivor holds {t['n_minus_2_connections']:,.0f} of {limit:,} connections).")
    else:
        lines.append(f"- **{row.devices:,} devices: no size up to 8 nodes per region** keeps N-2 below "
                     f"{limit:,} connections per node: raise the per-node capacity or add regions.")
diffs = avail[(avail["metric"] == "client-weighted downtime") & (avail["design"] != designs[0].meta.name)]
for d in diffs.itertuples():
    verdict = "no difference shown" if d.zero_in_ci else ("fewer" if d.diff < 0 else "more")
    lines.append(f"- {d.design}: client-weighted downtime {d.value:.1f} min/yr, {d.diff:+.1f} "
                 f"(95 % CI {d.diff_lo:+.1f} .. {d.diff_hi:+.1f}) against {designs[0].meta.name}: "
                 f"{verdict}.")
budget = (1 - reference.targets.availability) * 525_960
within = avail_table[avail_table["client-weighted downtime"] <= budget].index
lines.append("- Sizes within the five-nines budget for devices: " + (", ".join(within) or
             f"**none** ({budget:.2f} min/yr): node count does not fix what devices live through") + ".")
if SMALL:
    lines.append("- *(small budget: 10 years x 2 replications per design)*")
display(Markdown("\\n".join(lines)))
print("plan:", dict(zip(plan["devices"], plan["nodes_per_region"], strict=True)))'''),
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
