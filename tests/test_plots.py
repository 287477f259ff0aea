"""Study plots: named after the topology, downtime split by cause adds up to the total."""

from __future__ import annotations

import numpy as np
from conftest import make_spec

from sim.metrics import summarise
from sim.montecarlo import replicate_longrun, run
from sim.plots import _per_year_by_cause, file_stem, write_plots


def test_plots_carry_the_topology_and_causes_add_up(tmp_path) -> None:
    spec = make_spec(meta={"name": "two nodes / LB"}, simulation={"years": 3, "replications": 4, "seed": 2},
                     lb={"algorithm": "round_robin", "failure": {
                         "mtbf_hours": 300, "repair": {"dist": "exponential", "mean_hours": 2}}})
    results = run(spec, workers=1, worker=replicate_longrun, progress=False).results
    totals, split = _per_year_by_cause(results)
    assert set(split) == {"lb", "node.crash"}
    assert np.allclose(sum(split.values()), totals, rtol=1e-9, atol=1e-6)
    paths = write_plots(summarise(spec, results), results, tmp_path)
    assert [p.name for p in paths] == ["two-nodes-LB-downtime-per-year.png",
                                       "two-nodes-LB-availability.png", "two-nodes-LB-failover-cdf.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert file_stem("a/b c") == "a-b-c"
