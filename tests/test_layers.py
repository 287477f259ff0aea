"""The layers of docs/architecture.md hold: which package may import which, no import circle among
the CLI's modules, no module over about 400 lines (issue #21)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = ("sim", "lab", "calibration", "studies", "review", "twin")
# package -> the packages it may import (the arrows of docs/architecture.md)
ALLOWED = {
    "sim": {"sim"},
    "lab": {"lab"},
    "calibration": {"calibration", "sim", "lab"},  # lab: only its summary schema, see below
    "studies": {"studies", "sim"},
    "review": {"review", "studies", "sim"},
    "twin": set(PACKAGES),
}
MAX_LINES = 400


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _modules(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py"))


def test_each_package_imports_only_what_its_layer_may() -> None:
    wrong = []
    for pkg in PACKAGES:
        for f in _modules(pkg):
            for mod in _imports(f):
                top = mod.split(".")[0]
                if top in PACKAGES and top not in ALLOWED[pkg]:
                    wrong.append(f"{f.relative_to(ROOT)} imports {mod}")
                if pkg == "calibration" and top == "lab" and mod != "lab.summary_schema":
                    wrong.append(f"{f.relative_to(ROOT)} imports {mod} (only lab.summary_schema)")
    assert not wrong, wrong


def test_the_cli_modules_import_no_circle() -> None:
    graph = {f.stem: {m.split(".")[1] for m in _imports(f) if m.startswith("twin.")} | _from_twin(f)
             for f in _modules("twin")}

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph.get(start, ()))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += graph.get(n, ())
        return seen

    circles = [m for m in graph if m in reachable(m)]
    assert not circles, circles


def _from_twin(f: Path) -> set[str]:
    """`from twin import a, b` names modules."""
    return {a.name for node in ast.walk(ast.parse(f.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module == "twin" for a in node.names}


def test_no_module_is_over_about_400_lines() -> None:
    long = [f"{f.relative_to(ROOT)}: {n}" for pkg in PACKAGES for f in _modules(pkg)
            if (n := len(f.read_text().splitlines())) > MAX_LINES]
    assert not long, long
