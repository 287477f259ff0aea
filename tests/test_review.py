"""twin review: every bullet of the design document is a claim, each gets a verdict, and the
HTML report renders in a real browser with its table and plots."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from review.claims import load_claims

DOC = ROOT / "models" / "renata-design-2.2.1.de.md"
CLAIMS = ROOT / "models" / "renata-claims.toml"


def bullets() -> list[str]:
    """Every bullet ('- ' at any depth) and numbered item of the document, in order."""
    out = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*(?:-|\d+\.)\s+(.*\S)\s*$", line)
        if m:
            out.append(m.group(1))
    return out


def test_every_bullet_of_the_document_is_a_claim_in_order() -> None:
    quotes = [c.quote for c in load_claims(CLAIMS).claim]
    assert len(bullets()) == 41
    assert quotes == bullets()


def test_claims_file_errors_are_one_line(tmp_path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text(CLAIMS.read_text(encoding="utf-8").replace('check = "fact"', 'check = "facts"', 1))
    out = subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main())",
                          "review", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "check" in out.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)")
def test_review_runs_and_its_html_renders(tmp_path) -> None:
    html = tmp_path / "review.html"
    md = tmp_path / "review.md"
    env = {**os.environ, "TWIN_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main())",
                          "review", str(CLAIMS), "--recommended", str(ROOT / "models" / "renata-recommended.toml"),
                          "--years", "10", "--replications", "2", "--html", str(html), "--markdown", str(md)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    text = md.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert len(rows) == 41  # every claim, each with a verdict in both columns
    assert all(line.count("**") >= 4 for line in rows)
    # a what-if is simulated beside a claim that holds only if: two network paths per node
    [paths] = [line for line in rows if "redundanter Netzwerkpfade" in line]
    assert "two independent paths per node (what-if): device downtime from partitions" in paths
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<tr>") == 42 and 'id="claims"' in dom
    assert dom.count("data:image/png;base64,") >= 3
    shot = tmp_path / "review.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                    f"--screenshot={shot}", html.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000  # a page was drawn, not a blank one


def test_a_fact_shows_the_designs_figure_and_a_what_if_is_simulated_where_it_holds() -> None:
    from review.claims import Claim
    from review.engine import _check

    claim = Claim(id="p", section="s", quote="q", gloss="g", check="fact", verdict="holds only if",
                  condition="paths fail independently", source="twin",
                  path="client_downtime_minutes_per_year_by_cause.node.partition", label="partitions",
                  recommend={"changes": {"node.failure.partition.redundancy": {"units": 2}},
                             "text": "two paths", "always": True})
    verdict, figure = _check(claim, {"client_downtime_minutes_per_year_by_cause": {"node.partition": 2.5}},
                             {})
    assert verdict == "holds only if paths fail independently"
    assert figure == "partitions: 2.5. [twin]"
    assert claim.recommend.always
