"""Studies: paired comparisons, sweeps with a cache, variants refused before work."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, make_spec

from studies import VariantError, apply, compare
from studies.sweep import sweep, write_table

SMALL = {"years": 20, "replications": 6, "seed": 3}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TWIN_CACHE", str(tmp_path / "cache"))


def test_identical_designs_differ_by_zero_and_a_worse_one_shows() -> None:
    base = make_spec(simulation=SMALL)
    worse = apply(base, {"node.failure.crash.mtbf_hours": 40}, name="worse")
    df = compare([base, base, worse], use_cache=False)
    same = df[(df["design"] == base.meta.name) & (df["metric"] == "service downtime")]
    assert len(same) == 2 and same["zero_in_ci"].all()
    assert (same[["diff", "diff_lo", "diff_hi"]] == 0).all().all()
    row = df[(df["design"] == "worse") & (df["metric"] == "service downtime")].iloc[0]
    assert not row["zero_in_ci"] and row["diff_lo"] > 0  # more downtime, and the CI says so


def test_sweep_is_tidy_and_cached(tmp_path) -> None:
    base = make_spec(simulation=SMALL)
    grid = {"cluster.nodes": [3, 4], "node.failure.crash.mtbf_hours": [50, 100]}
    done = []
    df = sweep(base, grid, on_done=done.append)
    assert len(done) == 4 and not any(r.cached for r in done)
    assert {"design", "cluster.nodes", "node.failure.crash.mtbf_hours", "metric", "value", "lo",
            "hi", "diff"} <= set(df.columns)
    assert df["design"].nunique() == 4 and df.groupby("design").size().nunique() == 1
    again = []
    df2 = sweep(base, grid, on_done=again.append)
    assert all(r.cached for r in again)
    pd.testing.assert_frame_equal(df, df2)
    csv, parquet = write_table(df, tmp_path / "s.csv", tmp_path / "s.parquet")
    assert len(pd.read_parquet(parquet)) == len(pd.read_csv(csv)) == len(df)


def test_variants_are_checked_before_any_work() -> None:
    base = make_spec(simulation=SMALL)
    with pytest.raises(VariantError, match="bogus.key: unknown key"):
        apply(base, {"bogus.key": 1})
    with pytest.raises(VariantError, match="min_nodes_up"):
        apply(base, {"cluster.nodes": 1})
    out = subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main())",
                          "sweep", "models/renata-reference.toml", "--set", "cluster.nodes=3,0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "cluster.nodes" in out.stderr


def test_pool_cache_gives_the_same_answer_and_is_shared_across_failure_rates(tmp_path, monkeypatch) -> None:
    """Transient pools on disk (TWIN_POOL_CACHE) are keyed by what a transient reads: a design
    differing only in MTBF loads them, and every figure is identical to a run without the cache."""
    from sim.metrics import summarise
    from sim.montecarlo import run

    spec = make_spec(simulation={"years": 2, "replications": 2, "seed": 5}, clients={"count": 3000},
                     lb={"algorithm": "round_robin"},
                     node={"failure": {"crash": {"mtbf_hours": 100,
                                                 "repair": {"dist": "exponential", "mean_s": 60}}}})
    monkeypatch.delenv("TWIN_POOL_CACHE", raising=False)
    plain = summarise(spec, run(spec, workers=1, progress=False).results)
    folder = tmp_path / "pools"
    monkeypatch.setenv("TWIN_POOL_CACHE", str(folder))
    import sim.pools as ci

    ci._POOLS.clear()
    cached = summarise(spec, run(spec, workers=1, progress=False).results)
    files = set(folder.iterdir())
    assert files and cached["availability"] == plain["availability"]
    ci._POOLS.clear()
    faster = apply(spec, {"node.failure.crash.mtbf_hours": 50})
    run(faster, workers=1, progress=False)
    assert set(folder.iterdir()) == files  # nothing new was built
