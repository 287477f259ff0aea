"""The review as a terminal table, Markdown, and one self-contained HTML file (plots inlined)."""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from review.engine import Verdict

STYLE = {"holds": "green", "fails": "red", "cond": "yellow"}


def _style(verdict: str) -> str:
    return STYLE.get(_css(verdict), "")


def counts(verdicts: list[Verdict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in verdicts:
        word = "holds only if" if v.verdict.startswith("holds only if") else v.verdict
        out[word] = out.get(word, 0) + 1
    return out


def print_table(title: str, verdicts: list[Verdict], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=title, box=None, pad_edge=False, show_lines=False)
    for col in ("claim", "verdict", "figure"):
        table.add_column(col, overflow="fold")
    for v in verdicts:
        if v.claim.check == "process":
            continue
        table.add_row(v.claim.id, v.verdict, v.figure, style=_style(v.verdict))
    console.print(table)
    console.print(", ".join(f"{n} {w}" for w, n in counts(verdicts).items()))


def markdown(sides: list[tuple[str, list[Verdict]]]) -> str:
    """One row per claim; a column per reviewed design (as written, as recommended)."""
    names = [name for name, _ in sides]
    out = ["# Design review: HA design 2.2.1 (Renata SA), claim by claim", ""]
    for name, verdicts in sides:
        out.append(f"- **{name}**: " + ", ".join(f"{n} {w}" for w, n in counts(verdicts).items()))
    out += ["", "| section | claim | " + " | ".join(names) + " | recommended change, simulated against it |",
            "|---|---|" + "---|" * len(names) + "---|"]
    for i, v in enumerate(sides[0][1]):
        cells = [f"**{s[1][i].verdict}**<br>{s[1][i].figure}" for s in sides]
        claim = f"„{v.claim.quote}“<br>*{v.claim.gloss}*" + (f"<br>{v.claim.note}" if v.claim.note else "")
        out.append(f"| {v.claim.section} | {claim} | " + " | ".join(cells) + f" | {v.recommendation} |")
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


def html_report(sides: list[tuple[str, list[Verdict]]], figures: list[Any]) -> str:
    """Self-contained: CSS inline, every plot a data: URI."""
    names = [name for name, _ in sides]
    imgs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, fig in enumerate(figures):
            path = fig(Path(tmp) / f"{i}.png")
            imgs.append(base64.b64encode(Path(path).read_bytes()).decode())
    e = html.escape
    rows = []
    for i, v in enumerate(sides[0][1]):
        cells = "".join(f"<td class='{_css(s[1][i].verdict)}'><b>{e(s[1][i].verdict)}</b><br>"
                        f"<small>{e(s[1][i].figure)}</small></td>" for s in sides)
        rows.append(f"<tr><td>{e(v.claim.section)}</td><td>&bdquo;{e(v.claim.quote)}&ldquo;<br>"
                    f"<i>{e(v.claim.gloss)}</i>" + (f"<br><small>{e(v.claim.note)}</small>" if v.claim.note else "")
                    + f"</td>{cells}<td><small>{e(v.recommendation)}</small></td></tr>")
    summary = "".join(f"<li><b>{e(n)}</b>: " + e(", ".join(f"{c} {w}" for w, c in counts(vs).items()))
                      + "</li>" for n, vs in sides)
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    plots = "".join(f"<img alt='plot {i + 1}' src='data:image/png;base64,{b}'>" for i, b in enumerate(imgs))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Design review: HA design 2.2.1</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 6px;vertical-align:top;font-size:13px}}
.holds{{background:#e3f4e3}}.fails{{background:#f8dede}}.cond{{background:#fbf3d5}}
img{{max-width:48%;margin:4px;border:1px solid #ddd}}</style></head><body>
<h1>Design review: HA design 2.2.1 (Renata SA), claim by claim</h1>
<ul>{summary}</ul>
<table id="claims"><tr><th>section</th><th>claim</th>{head}<th>recommended change, simulated against it</th></tr>
{''.join(rows)}</table>
<h2>Figures</h2>{plots}
</body></html>
"""


def _css(verdict: str) -> str:
    if verdict.startswith("holds only") or verdict.startswith("not shown"):
        return "cond"
    return "holds" if verdict == "holds" else "fails" if verdict == "fails" else ""
