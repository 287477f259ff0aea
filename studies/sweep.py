"""Sweep a topology over a grid of edits or named variants: a tidy table, one row per design and
metric, each design cached (studies/evaluate.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from sim.spec import Spec
from studies.compare import table
from studies.evaluate import DesignResult, evaluate_all
from studies.variants import apply, expand_grid


def designs(spec: Spec, grid: dict[str, list[Any]] | None = None,
            variants: dict[str, dict[str, Any]] | None = None) -> list[tuple[dict[str, Any], Spec]]:
    """(changes, spec) per design: the grid's combinations, or the named variants."""
    if variants:
        return [(changes, apply(spec, changes, name=name)) for name, changes in variants.items()]
    return [(changes, apply(spec, changes)) for changes in expand_grid(grid or {})]


def sweep(spec: Spec, grid: dict[str, list[Any]] | None = None,
          variants: dict[str, dict[str, Any]] | None = None, workers: int | None = None,
          use_cache: bool = True, on_done: Callable[[DesignResult], None] | None = None
          ) -> pd.DataFrame:
    """Tidy results: design, each swept key, metric, unit, value, lo, hi, and the difference to
    the first design (paired, common random numbers)."""
    todo = designs(spec, grid, variants)
    sim = todo[0][1].simulation
    results = evaluate_all([s.model_copy(update={"simulation": sim}) for _, s in todo],
                           workers=workers, use_cache=use_cache, on_done=on_done)
    df = table(results, 0)
    keys = sorted({k for changes, _ in todo for k in changes})
    for k in keys:
        df[k] = df["design"].map({r.name: changes.get(k) for (changes, _), r in
                                  zip(todo, results, strict=True)}).astype(str)
    return df[["design", *keys] + [c for c in df.columns if c not in ("design", *keys)]]


def write_table(df: pd.DataFrame, csv: Path | None = None, parquet: Path | None = None) -> list[Path]:
    out = []
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(csv, index=False)
        out.append(csv)
    if parquet is not None:
        parquet.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(parquet, index=False)
        out.append(parquet)
    return out
