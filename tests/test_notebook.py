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
