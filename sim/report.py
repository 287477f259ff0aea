"""The terminal and Markdown report: each metric, its CI, its target, and the verdict in words."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from sim.metrics import MINUTES_PER_YEAR


def nines(a: float) -> str:
    """A percentage with enough decimals to show two digits of the unavailability (five at
    least): 99.99999780 % is not 100.00000 %."""
    u = 1.0 - a
    decimals = 5 if u <= 0 or u * 100 >= 1e-4 else min(12, math.ceil(-math.log10(u * 100)) + 1)
    return f"{a * 100:.{decimals}f} %"


def unavailability(a: float) -> str:
    return f"{1.0 - a:.2e}"


def _gap_words(value: float, target: float, kind: str = "service") -> str:
    """How far an availability is from its target: downtime minutes per year, or for messages,
    messages per million."""
    if kind == "message":
        ppm = (target - value) * 1e6
        return f"{ppm:.3g} per M over" if ppm > 0 else f"{-ppm:.3g} per M spare"
    diff = (target - value) * MINUTES_PER_YEAR
    return f"{diff:.3g} min/yr over" if diff > 0 else f"{-diff:.3g} min/yr spare"


LABELS = {"service": "service", "client_weighted": "client-weighted", "message": "messages"}


def rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(metric, value, 95 % CI, target, verdict) rows shared by the terminal and Markdown views;
    short enough for 80 columns (details follow in extra_lines)."""
    out = []
    targets = summary["targets"]
    has_clients = "clients" in summary
    for kind in ("service", "client_weighted", "message") if has_clients else ("service",):
        a = summary["availability"][kind]
        t = targets.get(f"availability.{kind}")
        verdict = ""
        if t and t.get("verdict") == "not_shown":  # neither PASS nor FAIL: the interval spans it
            verdict = "NOT SHOWN"
        elif t:
            verdict = ("PASS" if t["pass"] else "FAIL") + ", " + _gap_words(a["mean"], t["target"], kind)
        out.append((LABELS[kind] if has_clients else "availability", nines(a["mean"]),
                    f"{nines(a['ci95'][0])} ..{nines(a['ci95'][1])}",
                    nines(t["target"]) if t else "-", verdict))
    d = summary["downtime_minutes_per_year"]
    budget = d.get("budget_minutes")
    out.append(("downtime min/yr", f"{d['mean']:.3g}", f"{d['ci95'][0]:.3g} .. {d['ci95'][1]:.3g}",
                f"<= {budget:.3g}" if budget is not None else "-",
                f"{d['p_exceed_budget'] * 100:.1f} % yrs over" if budget else ""))
    for key, label, metric in (("rto_minutes", "RTO min (p99)", "rto_seconds"),
                               ("rpo_minutes", "RPO min (p99)", "rpo_seconds")):
        p = summary[metric]
        t = targets.get(key)
        value = "-" if p["p99"] is None else f"{p['p99'] / 60:.3g}"
        verdict = ""
        if t:
            verdict = ("PASS" if t["pass"] else "FAIL") + (
                f", max {p['max'] / 60:.3g}" if p["count"] else ", not exercised")
        out.append((label, value, "-", f"<= {t['target']:g}" if t else "-", verdict))
    return out


def worst_cause(summary: dict[str, Any]) -> str:
    lines = []
    for key, what in (("downtime_minutes_per_year_by_cause", "service downtime"),
                      ("client_downtime_minutes_per_year_by_cause", "client downtime")):
        by_cause = summary.get(key)
        if by_cause is None:
            continue
        if not by_cause or sum(by_cause.values()) == 0:
            lines.append(f"No {what} was simulated.")
            continue
        total = sum(by_cause.values())
        cause, minutes = max(by_cause.items(), key=lambda kv: kv[1])
        lines.append(f"Most {what} comes from {cause}: {minutes:.3g} of {total:.3g} min/yr "
                     f"per {'client' if what.startswith('client') else 'year'} "
                     f"({minutes / total * 100:.0f} %).")
    return " ".join(lines)


def print_report(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=title(summary), box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("metric", "mean", "95 % CI", "target", "verdict"):
        table.add_column(col, overflow="fold")
    for r in rows(summary):
        style = "red" if r[4].startswith("FAIL") else ("green" if r[4].startswith("PASS") else "")
        table.add_row(*r, style=style)
    console.print(table)
    console.print(worst_cause(summary))
    for line in extra_lines(summary):
        console.print(line)


def title(summary: dict[str, Any]) -> str:
    return (f"{summary['spec']['meta']['name']}: {summary['replications']} x "
            f"{summary['years_per_replication']:g} years, seed {summary['seed']}, "
            f"{summary.get('start', 'stationary')} start")


def extra_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    a = summary["availability"]["service"]
    if 1.0 - a["mean"] < 1e-4:
        lines.append(f"Service unavailability {unavailability(a['mean'])} (95 % CI "
                     f"{unavailability(a['ci95'][1])} .. {unavailability(a['ci95'][0])}).")
    est = summary.get("estimator", {})
    if est.get("service") == "rare":
        lines.append(f"Service availability by the rare-event estimator ({est['method']}, "
                     f"{est['seconds']:.1f} s).")
    d = summary["downtime_minutes_per_year"]
    lines.append(f"Downtime per year (min): p50 {d['p50']:.3g}, p95 {d['p95']:.3g}, "
                 f"p99 {d['p99']:.3g} (years of the plain replications).")
    causes = summary["downtime_minutes_per_year_by_cause"]
    if causes:
        lines.append("Service downtime by cause (min/yr): " + ", ".join(
            f"{c} {m:.3g}" for c, m in sorted(causes.items(), key=lambda kv: -kv[1])))
    fo = summary["failover_seconds"]
    if fo and "clients" in summary:
        lines.append("Failover seconds as clients see them (p50/p95/p99): " + "; ".join(
            f"{m} {v['p50']:.1f}/{v['p95']:.1f}/{v['p99']:.1f}" for m, v in fo.items()
            if v["count"]))
    for key, stat in summary.get("clients", {}).items():
        lines.append(f"{key.replace('_', ' ')}: {stat['mean']:.4g} "
                     f"(95 % CI {stat['ci95'][0]:.4g} .. {stat['ci95'][1]:.4g})")
    for name, cap in summary.get("capacity", {}).items():
        limit = cap["max_conn_rate_per_s"]
        lines.append(
            f"{name.replace('_minus_', '-').upper()}: up to {cap['connections_per_node_max']:.0f} "
            f"connections per survivor (overload at {cap['overload_connections'] or 'unset'}), "
            f"peak {cap['peak_reconnects_per_s']:.0f} reconnects/s per survivor against a limit of "
            f"{f'{limit:,.0f}' if limit else 'none'}" + ("; CASCADE" if cap["cascade"] else "")
            + (f"; {cap['never_back']:,} clients never back (48 h)" if cap.get("never_back")
               else ""))
        res = cap.get("resources")
        if res is not None:
            lines.append(resource_line(res))
        if res is None or "node" not in res:
            lines += capacity_doubts(cap["connections_per_node_max"])
    cal = summary.get("calibration")
    if cal:
        lines.append(f"Client transients of {', '.join(cal['modes'])} come from calibration "
                     f"{cal['file']} (broker {', '.join(cal['broker'])}"
                     + ("; a stand-in, not EMQX" if cal["standin"] else "") + "); the others from "
                     "the model's own transient.")
    if summary["stopped_by"] == "max_replications":
        lines.append("Stopped at --max-replications before reaching --precision.")
    if summary["stopped_by"] == "no_outages":
        lines.append("Stopped: no outage in any replication, so no relative precision can be "
                     "reached; the verdicts say how many simulated years would show the target.")
    for kind, t in summary["targets"].items():
        if t.get("verdict") == "not_shown":
            more = t.get("more_years")
            lines.append(f"{kind}: NOT SHOWN, the 95 % interval spans the target; " + (
                f"simulate about {more:,.0f} more years" if more is not None
                else t.get("hint", "simulate more years")) + f". Interval: {t['interval']}.")
    return lines


# docs/facts.md: Azure drops connections past 500,000 active flows per VM; EMQX publishes 1 M
# connections on one 16-vCPU / 32 GB node (12.1 GB used).
AZURE_FLOWS_PER_VM = 500_000
EMQX_PUBLISHED_CONNECTIONS_PER_NODE = 1_000_000


def capacity_doubts(per_node: float) -> list[str]:
    """What the figures above cannot promise: the model has no CPU or memory per node yet."""
    out = []
    if per_node > AZURE_FLOWS_PER_VM:
        out.append(f"  {per_node:,.0f} connections on one node are more than the 500,000 active "
                   "flows an Azure VM takes (the rest are dropped): this design cannot hold them")
    if per_node > EMQX_PUBLISHED_CONNECTIONS_PER_NODE:
        out.append("  EMQX's largest published single node held 1,000,000 connections (16 vCPU, "
                   "32 GB); nothing in this run checks a node's CPU or memory")
    return out


def resource_line(res: dict[str, Any]) -> str:
    """What the busiest survivor needs (load costs) and, on a sized node, which limit breaks."""
    need = (f"  needs {res['cpu_cores']:.3g} cores and {res['memory_bytes'] / 1e9:.3g} GB at "
            f"steady state ({res['costs']})")
    if "node" not in res:
        return need + "; no node size given (cluster.vm): nothing to compare them with"
    util = ", ".join(f"{k} {100 * u:.0f} %" for k, u in res["utilisation"].items())
    verdict = ("; BROKEN: " + ", ".join(res["broken"])) if res["broken"] else \
        f"; within the limits (binding: {res['binding']})"
    return f"{need}: of the planning limits on {res['node']}: {util}{verdict}"


def markdown(summary: dict[str, Any]) -> str:
    out = [f"# {title(summary)}", "",
           "| metric | mean | 95 % CI | target | verdict |", "|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows(summary)]
    out += ["", worst_cause(summary), ""] + [f"- {line}" for line in extra_lines(summary)]
    return "\n".join(out) + "\n"
