"""Which uncertain input decides the verdict: one-at-a-time swings (tornado), global Sobol indices
(SALib) and, per input, the value where the verdict against the target flips.

Inputs are the topology's `[uncertainty]` table: dotted key -> {low, high, log, reason}. An
evaluator turns a spec into figures: `simulated` (cached runs of sim/) or `exact` (twin analytic,
for designs that have one; thousands of evaluations a second)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.metrics import MINUTES_PER_YEAR
from sim.spec import Spec, Uncertain
from studies.evaluate import evaluate
from studies.variants import apply

Evaluator = Callable[[Spec], dict[str, float]]
METRICS = {"downtime_min_per_year": "service downtime (min/yr)",
           "client_downtime_min_per_year": "client-weighted downtime (min/yr)"}


def simulated(spec: Spec, workers: int | None = None) -> dict[str, float]:
    s = evaluate(spec, workers=workers, progress=False).summary
    a = s["availability"]
    return {"downtime_min_per_year": (1 - a["service"]["mean"]) * MINUTES_PER_YEAR,
            "client_downtime_min_per_year": (1 - a["client_weighted"]["mean"]) * MINUTES_PER_YEAR}


def exact(spec: Spec) -> dict[str, float]:
    from sim.analytic import solve

    u = (1 - solve(spec).service) * MINUTES_PER_YEAR
    return {"downtime_min_per_year": u, "client_downtime_min_per_year": u}


def base_value(spec: Spec, key: str) -> Any:
    node: Any = spec.model_dump(mode="json")
    for part in key.split("."):
        node = node[0] if part == "*" else node[int(part)] if isinstance(node, list) else node[part]
    return node


def _value(spec: Spec, key: str, x: float) -> float | int:
    return int(round(x)) if isinstance(base_value(spec, key), int) else float(x)


def tornado(spec: Spec, evaluator: Evaluator = simulated,
            inputs: dict[str, Uncertain] | None = None, flip_steps: int = 3) -> pd.DataFrame:
    """Each input at its low and its high, the others as written; sorted by swing. Where the
    figure crosses the target's budget inside the range, `flip_steps` bisections locate it."""
    inputs = inputs if inputs is not None else spec.uncertainty
    base = evaluator(spec)
    budget = _budget(spec)
    rows = []
    for key, u in inputs.items():
        b0 = base_value(spec, key)

        def at(x: float, key: str = key) -> dict[str, float]:
            return evaluator(apply(spec, {key: _value(spec, key, x)}, name=f"{key}={x:g}"))

        ends = {"low": at(u.low), "high": at(u.high)}
        for metric in base:
            lo, b, hi = ends["low"][metric], base[metric], ends["high"][metric]
            flip = None
            if budget is not None:
                flip = _flip(u, [(u.low, lo), (b0, b), (u.high, hi)], budget,
                             lambda x, m=metric: at(x)[m], flip_steps)
            rows.append(dict(input=key, reason=u.reason, metric=metric, low=u.low, base=b0,
                             high=u.high, at_low=lo, at_base=b, at_high=hi, swing=abs(hi - lo),
                             flips_at=flip))
    df = pd.DataFrame(rows)
    return df.sort_values(["metric", "swing"], ascending=[True, False]).reset_index(drop=True)


def _budget(spec: Spec) -> float | None:
    a = spec.targets.availability
    return None if a is None else (1 - a) * MINUTES_PER_YEAR


def _flip(u: Uncertain, points: list[tuple[float, float]], budget: float,
          figure: Callable[[float], float], steps: int) -> float | None:
    """Where the figure crosses the budget within [low, high] (bisection on the scale the input
    varies on, from the first bracketing pair of points); None when it does not cross. Judged on
    the mean: the run's CI says how sure that is."""
    pts = sorted(points)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if x0 == x1 or (y0 - budget) * (y1 - budget) >= 0:
            continue
        to = (lambda v: math.log(v)) if u.log else (lambda v: v)
        back = (lambda v: math.exp(v)) if u.log else (lambda v: v)
        a, b = to(x0), to(x1)
        for _ in range(steps):
            mid = (a + b) / 2
            if (figure(back(mid)) - budget) * (y0 - budget) > 0:
                a = mid
            else:
                b = mid
        return float(back((a + b) / 2))
    return None


def sobol(spec: Spec, evaluator: Evaluator = exact, inputs: dict[str, Uncertain] | None = None,
          samples: int = 256, seed: int = 1) -> pd.DataFrame:
    """First-order (S1) and total (ST) Sobol indices of each figure, with 95 % confidence
    half-widths; log inputs are sampled uniformly in log space."""
    from SALib.analyze import sobol as analyze
    from SALib.sample import sobol as sample

    inputs = inputs if inputs is not None else spec.uncertainty
    keys = list(inputs)
    bounds = [[math.log10(u.low), math.log10(u.high)] if u.log else [u.low, u.high]
              for u in inputs.values()]
    problem = {"num_vars": len(keys), "names": keys, "bounds": bounds}
    x = sample.sample(problem, samples, calc_second_order=False, seed=seed)
    ys: dict[str, list[float]] = {}
    for row in x:
        values = {k: _value(spec, k, 10**v if inputs[k].log else v) for k, v in zip(keys, row, strict=True)}
        for metric, y in evaluator(apply(spec, values, name="sobol sample")).items():
            ys.setdefault(metric, []).append(y)
    rows = []
    for metric, y in ys.items():
        res = analyze.analyze(problem, np.asarray(y), calc_second_order=False, seed=seed)
        for i, k in enumerate(keys):
            rows.append(dict(input=k, metric=metric, S1=res["S1"][i], S1_conf=res["S1_conf"][i],
                             ST=res["ST"][i], ST_conf=res["ST_conf"][i]))
    return pd.DataFrame(rows)


def tornado_plot(df: pd.DataFrame, metric: str, path: Path, title: str, budget: float | None
                 ) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    sub = df[df["metric"] == metric].sort_values("swing")
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.5 * len(sub)))
    base = float(sub["at_base"].iloc[0])
    y = np.arange(len(sub))
    for yi, row in zip(y, sub.itertuples(), strict=True):
        if row.at_low == row.at_high == base:
            ax.annotate("no effect in this range", (base, yi), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7, color="0.4")
            continue
        # low above, high below: both visible even when they go the same way
        for x, color, side, dy in ((row.at_low, "tab:blue", row.low, 0.2),
                                   (row.at_high, "tab:orange", row.high, -0.2)):
            ax.barh(yi + dy, x - base, left=base, height=0.38, color=color, alpha=0.85)
            ax.annotate(f"{side:g} -> {x:.3g}", (x, yi + dy), xytext=(3 if x >= base else -3, 0),
                        textcoords="offset points", ha="left" if x >= base else "right",
                        va="center", fontsize=7)
    labels = [f"{r.input}" + (f"\nflips at {r.flips_at:.3g}" if r.flips_at == r.flips_at and
                              r.flips_at is not None else "") for r in sub.itertuples()]
    ax.set_yticks(y, labels, fontsize=8)
    lines = [ax.axvline(base, color="black", lw=0.8, label=f"as written: {base:.3g}")]
    if budget is not None:
        lines.append(ax.axvline(budget, color="red", ls="--", label=f"budget {budget:.3g} min/yr"))
    ax.legend(handles=lines + [Patch(color="tab:blue", label="input at its low"),
                               Patch(color="tab:orange", label="input at its high")],
              fontsize=8, loc="best")
    ax.margins(x=0.15)
    ax.set_xlabel(METRICS.get(metric, metric))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
