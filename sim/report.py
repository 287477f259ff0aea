"""The terminal and Markdown report: each metric, its CI, its target, and the verdict in words."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sim.metrics import MINUTES_PER_YEAR


def nines(a: float) -> str:
    return f"{a * 100:.5f} %"


def _gap_words(value: float, target: float, kind: str = "service") -> str:
    """How far an availability is from its target: downtime minutes per year, or for messages,
    messages per million."""
    if kind == "message":
        ppm = (target - value) * 1e6
        return (f"misses by {ppm:.1f} lost per million messages" if ppm > 0
                else f"{-ppm:.1f} per million to spare")
    diff = (target - value) * MINUTES_PER_YEAR
    if diff > 0:
        return f"misses by {diff:.1f} min/yr of downtime"
    return f"{-diff:.1f} min/yr to spare"


def rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(metric, value, 95 % CI, target, verdict) rows shared by the terminal and Markdown views."""
    out = []
    targets = summary["targets"]
    for kind in ("service", "client_weighted", "message"):
        a = summary["availability"][kind]
        t = targets.get(f"availability.{kind}")
        verdict = ""
        if t and t.get("verdict") == "not_shown":  # neither PASS nor FAIL: the interval spans it
            more = t.get("more_years")
            verdict = ("NOT SHOWN: the 95 % interval spans the target; " + (
                f"simulate about {more:,.0f} more years" if more is not None else "more years"))
        elif t:
            verdict = ("PASS" if t["pass"] else "FAIL") + ": " + _gap_words(a["mean"], t["target"], kind)
        out.append((f"availability ({kind.replace('_', '-')})", nines(a["mean"]),
                    f"{nines(a['ci95'][0])} .. {nines(a['ci95'][1])}",
                    nines(t["target"]) if t else "-", verdict))
    d = summary["downtime_minutes_per_year"]
    budget = d.get("budget_minutes")
    out.append(("downtime per year (min)", f"{d['mean']:.2f}",
                f"{d['ci95'][0]:.2f} .. {d['ci95'][1]:.2f}",
                f"<= {budget:.2f}" if budget is not None else "-",
                f"p50 {d['p50']:.2f}, p95 {d['p95']:.2f}, p99 {d['p99']:.2f}; "
                f"{d['p_exceed_budget'] * 100:.1f} % of years over budget" if budget else ""))
    for key, label, metric in (("rto_minutes", "RTO achieved (min, p99)", "rto_seconds"),
                               ("rpo_minutes", "RPO achieved (min, p99)", "rpo_seconds")):
        p = summary[metric]
        t = targets.get(key)
        value = "-" if p["p99"] is None else f"{p['p99'] / 60:.2f}"
        verdict = ""
        if t:
            verdict = ("PASS" if t["pass"] else "FAIL") + (
                f": max {p['max'] / 60:.1f} min over {p['count']} events" if p["count"]
                else ": not exercised")
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
        lines.append(f"Most {what} comes from {cause}: {minutes:.2f} of {total:.2f} min/yr "
                     f"per {'client' if what.startswith('client') else 'year'} "
                     f"({minutes / total * 100:.0f} %).")
    return " ".join(lines)


def print_report(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    spec = summary["spec"]
    table = Table(title=f"{spec['meta']['name']}: {summary['replications']} replications x "
                        f"{summary['years_per_replication']:g} years, seed {summary['seed']}")
    for col in ("metric", "mean", "95 % CI", "target", "verdict"):
        table.add_column(col)
    for r in rows(summary):
        style = "red" if r[4].startswith("FAIL") else ("green" if r[4].startswith("PASS") else "")
        table.add_row(*r, style=style)
    console.print(table)
    console.print(worst_cause(summary))
    for line in extra_lines(summary):
        console.print(line)


def extra_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    causes = summary["downtime_minutes_per_year_by_cause"]
    if causes:
        lines.append("Service downtime by cause (min/yr): " + ", ".join(
            f"{c} {m:.3f}" for c, m in sorted(causes.items(), key=lambda kv: -kv[1])))
    fo = summary["failover_seconds"]
    if fo:
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
            f"{limit if limit else 'none'}" + ("; CASCADE" if cap["cascade"] else ""))
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
            lines.append(f"{kind}: {t['interval']}.")
    return lines


def markdown(summary: dict[str, Any]) -> str:
    out = [f"# {summary['spec']['meta']['name']}", "",
           "| metric | mean | 95 % CI | target | verdict |", "|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows(summary)]
    out += ["", worst_cause(summary), ""] + [f"- {line}" for line in extra_lines(summary)]
    return "\n".join(out) + "\n"
