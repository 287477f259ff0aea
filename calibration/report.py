"""The calibration and its validation as Markdown tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calibration.validate import meets_targets


def pct_cell(r: dict[str, Any], k: str, sep: str = " / ", pc: str = " %") -> str:
    """lab / twin (relative error); a percentile beyond the run's end (censored) shows as such."""
    def v(x: float | None) -> str:
        return "beyond the run" if x is None else f"{x:.2f}"

    err = r["rel_error"][k]
    return f"{v(r['lab'][k])}{sep}{v(r['sim'][k])}" + ("" if err is None else f" ({err * 100:+.0f}{pc})")


def censored_cell(r: dict[str, Any]) -> str:
    """The share of outages still open at the run's end, lab / twin ('' when none on either)."""
    c = r.get("censored")
    return f"{c['lab'] * 100:.0f} / {c['sim'] * 100:.0f} %" if c else ""


def _shift(r: dict[str, Any]) -> str:
    return "-" if r["wasserstein_s"] is None else f"{r['wasserstein_s']:.3f}"


def ks_spread(m: dict[str, Any]) -> str:
    """The KS of half the held-out runs: its 5-95 % range, and how often it met the bar."""
    b = m.get("ks_half_of_runs")
    return (f" (halves of {b['runs']} runs: {b['range90'][0]:.2f}-{b['range90'][1]:.2f}, "
            f"below {b['bar']} in {b['below_bar'] * 100:.0f} %)" if b else "")


def markdown_tables(calibration: dict[str, Any], report: dict[str, Any]) -> str:
    """What was calibrated, then lab vs twin per held-out run and pooled per mode."""
    out = ["| mode | runs | outage fit | median s | p95 s | probe timeout measured s | CONNACK wait s "
           "| CONNACK latency median s | collateral outages per other client | session present "
           "| ack lost per event |", "|---" * 11 + "|"]
    for mode, m in calibration["modes"].items():
        f, mech = m["client_outage_s"], m["mechanism"]
        lat = mech["connack_latency_s"]["median"] if mech["connack_latency_s"] else float("nan")
        wait = f"{mech['connack_wait_s']['median']:.2f}" if mech.get("connack_wait_s") else "-"
        probe = mech.get("probe_timeout_measured_s")
        probe = f"{probe:.2f}" if probe is not None else "-"
        out.append(f"| {mode} | {m['runs']} | {f['family']} (KS {f['ks']:.3f}) | {f['median']:.2f} "
                   f"| {f['p95']:.2f} | {probe} | {wait} "
                   f"| {lat:.3f} | {m['collateral']['outages_per_other_client']:.2f} "
                   f"| {m['session_present_ratio']} | {m['acknowledged_lost_per_event']:.2f} |")
    out += ["", "| run | mode | n lab | p50 lab / twin | p95 lab / twin | p99 lab / twin | KS "
            "| shift s | session present lab / twin | ack lost lab / twin | collateral outages lab / twin "
            "| bar met (run: p50, p95; pooled: and KS) |", "|---" * 12 + "|"]
    for r in report["runs"]:
        sp, al, co = r["session_present"], r["acknowledged_lost"], r["collateral_outages"]
        out.append(f"| {Path(r['run']).stem} | {r['mode']} | {r['samples']['lab']} "
                   f"| {pct_cell(r, 'p50')} | {pct_cell(r, 'p95')} | {pct_cell(r, 'p99')} "
                   f"| {r['ks_distance']:.3f} | {_shift(r)} | {sp['lab']} / {sp['sim']:.2f} "
                   f"| {al['lab']} / {al['sim']} "
                   f"| {co['lab']} / {co['sim']} | {'yes' if meets_targets(r, ks=None) else 'NO'} |")
    for mode, m in report["modes"].items():
        out.append(f"| **all held-out ({m['runs']})** | {mode} | {m['samples']['lab']} "
                   f"| {pct_cell(m, 'p50')} | {pct_cell(m, 'p95')} | {pct_cell(m, 'p99')} "
                   f"| {m['ks_distance']:.3f}{ks_spread(m)} | {_shift(m)} | | | "
                   f"| {'yes' if meets_targets(m) else 'NO'} |")
    return "\n".join(out + ["", latency_table(report)])


def latency_table(report: dict[str, Any]) -> str:
    """Per mode, the held-out runs' per-attempt latencies against the fits the replay draws from:
    a few ms that move whole runs, and decide the KS where outages sit within 10 ms."""
    out = ["| mode | CONNACK latency ms: run medians (calibrated) | KS to fit "
           "| client lateness ms: run medians (calibrated) | KS to fit |", "|---" * 5 + "|"]
    for mode, m in report["modes"].items():
        cells = []
        for key in ("connack_latency_s", "reconnect_overhead_s"):
            c = m.get(key)
            meds = c and c["held_out_run_medians"]
            cells += [f"{min(meds) * 1e3:.1f}-{max(meds) * 1e3:.1f} ({c['calibrated_median'] * 1e3:.1f})",
                      f"{c['ks_distance']:.2f}"] if meds else ["-", "-"]
        out.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(out)
