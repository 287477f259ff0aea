"""The lab-validation notebook runs, top to bottom, on the committed EMQX files."""

from __future__ import annotations

import nbformat
from conftest import ROOT
from nbclient import NotebookClient


def test_lab_validation_notebook_runs_on_committed_files() -> None:
    nb = nbformat.read(ROOT / "notebooks" / "lab-validation.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert "held-out runs replayed" in text and "stand-in False" in text
    for mode in ("crash", "hang", "partition"):
        assert "**all held-out" in markdown and f"| {mode} |" in markdown
    assert len(images) == 1


def _run(name: str) -> tuple[str, str]:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")
    text = "".join(o.get("text", "") for o in outputs)
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    return text, markdown


def test_planner_notebooks_run_and_conclude_from_their_numbers(tmp_path, monkeypatch) -> None:
    """Both notebooks top to bottom on CI's small budget: the capacity plan comes out of the
    load costs and the failover model (N-2 within CPU, memory and flows), and the what-if
    conclusion names the LB changes that fix the hung-node problem as shown better for devices."""
    monkeypatch.setenv("TWIN_NOTEBOOK_BUDGET", "small")
    monkeypatch.setenv("TWIN_CACHE", str(tmp_path / "cache"))
    text, markdown = _run("capacity-planning.ipynb")
    assert "plan: {100000: '3 x D4s_v5', 1000000: '4 x D4s_v5', 10000000: '12 x D8s_v5'}" in text
    assert "**10,000,000 devices: 12 x D8s_v5 per region** (fewest vCPU that holds N-2; " \
        "binding: flows" in markdown
    text, markdown = _run("what-if.ipynb")
    assert "conclusion drawn from 13 designs" in text
    better = next(line for line in markdown.splitlines() if line.startswith("- Shown better"))
    for design in ("HTTP probe", "Azure LB: 5-tuple hash"):
        assert design in better, better
    assert "As written, a device is disconnected" in markdown
