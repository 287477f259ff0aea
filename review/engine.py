"""Checks each claim: the simulation (one cached run of the topology, plus each recommended
change, run with common random numbers against it), the lab's calibration file, or a fact."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from review.claims import Claim, ClaimsFile
from sim.spec import Spec, load_spec
from studies.compare import table as paired_table
from studies.evaluate import evaluate_all
from studies.variants import apply

OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge,
                                                    "<": operator.lt, ">": operator.gt}
TARGET_WORDS = {"pass": "holds", "fail": "fails", "not_shown": "not shown"}


@dataclass
class Verdict:
    claim: Claim
    verdict: str  # holds / fails / holds only if ... / not shown / not checkable here
    figure: str
    recommendation: str = ""


def lookup(data: dict[str, Any], path: str, default: float | None = None) -> Any:
    """A dotted path into the summary; keys may contain dots themselves (node.hang)."""
    node: Any = data
    rest = path
    while rest:
        if not isinstance(node, dict):
            break
        match = max((k for k in node if rest == k or rest.startswith(k + ".")), key=len, default=None)
        if match is None:
            if default is not None:
                return default
            raise KeyError(path)
        node, rest = node[match], rest[len(match) + 1:]
    return node


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if 0.99 < v < 1:
            return f"{v * 100:.5f} %"
        return f"{v:,.4g}"
    return str(v)


def _check(claim: Claim, summary: dict[str, Any], lab: dict[str, Any]) -> tuple[str, str]:
    """(verdict, figure) for one claim against one run."""
    for key, value in (claim.applies_if or {}).items():
        actual = lookup(summary["spec"], key)
        if actual != value:
            return "holds", f"replaced in this design: {key} = {actual}"
    if claim.check == "target":
        t = summary["targets"].get(claim.key)
        if t is None:
            return "not checkable here", f"{claim.key}: no such target in the topology"
        if "ci95" in t:
            value = f"{_fmt(t['value'])} [{_fmt(t['ci95'][0])}, {_fmt(t['ci95'][1])}]"
        else:
            value = "not exercised" if t["value"] is None else f"{t['value']:.3g} min"
        verdict = TARGET_WORDS.get(t.get("verdict", "pass" if t["pass"] else "fail"))
        return verdict, f"{claim.label or claim.key}: {value} vs target {_fmt(t['target'])}"
    if claim.check in ("metric", "lab"):
        source = summary if claim.check == "metric" else lab
        value = lookup(source, claim.path, claim.default)
        ok = OPS[claim.op](float(value), float(claim.threshold))
        where = "" if claim.check == "metric" else " (lab, EMQX 5.8.9)"
        return ("holds" if ok else "fails",
                f"{claim.label or claim.path}{where}: {_fmt(float(value))} (needs {claim.op} "
                f"{_fmt(float(claim.threshold))})")
    if claim.check == "fact":
        verdict = claim.verdict if claim.verdict != "holds only if" else f"holds only if {claim.condition}"
        figure = claim.condition if claim.verdict != "holds only if" else ""
        if claim.path:  # a figure of this design beside the fact
            figure = f"{figure} {claim.label or claim.path}: {_fmt(lookup(summary, claim.path, claim.default))}."
        return verdict, f"{figure.strip()} [{claim.source}]"
    if claim.check == "capacity":
        from review.capacity import check_capacity
        from sim.spec import parse_spec

        return check_capacity(claim, parse_spec(summary["spec"]))
    if claim.check == "process":
        return "a plan step", claim.why or ""
    return "not checkable here", claim.why or ""


def check_paths(claims: ClaimsFile, claims_path: Path, spec: Spec,
                workers: int | None = None) -> None:
    """Every `path` a claim reads names a figure: the lab's in the calibration file, the
    simulation's in the summary of a short run of the same design (0.1 year x 2; its failover
    pools are the ones the real run uses). A SpecError names the first that does not."""
    from sim.spec import SpecError

    lab = json.loads((claims_path.parent / claims.review.calibration).read_text())
    short = spec.model_copy(update={"simulation": spec.simulation.model_copy(
        update={"years": 0.1, "replications": 2})})
    summary: dict[str, Any] | None = None
    for c in claims.claim:
        if c.check not in ("metric", "lab") and not (c.check == "fact" and c.path):
            continue
        if c.check != "lab" and summary is None:
            summary = evaluate_all([short], workers=workers)[0].summary
        source = lab if c.check == "lab" else summary
        try:
            lookup(source, c.path, c.default)
        except KeyError:
            where = "the calibration file" if c.check == "lab" else "the simulation's summary"
            raise SpecError(f"{claims_path}: claim {c.id}: path = {c.path!r}: no such figure in "
                            f"{where} (top-level keys: {', '.join(sorted(source))})") from None


def _change_key(claim: Claim) -> str:
    return json.dumps(claim.recommend.changes if claim.recommend else {}, sort_keys=True)


def run_review(claims: ClaimsFile, claims_path: Path, topology: Path | None = None,
               workers: int | None = None, on_done: Callable[[Any], None] | None = None,
               years: float | None = None, replications: int | None = None
               ) -> tuple[Spec, list[Verdict], Any]:
    """All verdicts for one topology; recommended changes simulated against it (paired)."""
    root = claims_path.parent
    spec = load_spec(topology or root / claims.review.topology)
    sim = spec.simulation.model_copy(update={"years": years or claims.review.years,
                                             "replications": replications or claims.review.replications})
    spec = spec.model_copy(update={"simulation": sim})
    lab = json.loads((root / claims.review.calibration).read_text())
    variants: dict[str, Spec] = {}  # one design per distinct change
    for c in claims.claim:
        if c.recommend is not None:
            variants.setdefault(_change_key(c), apply(spec, c.recommend.changes, name=c.recommend.text[:60]))
    base, *others = evaluate_all([spec, *variants.values()], workers=workers, on_done=on_done)
    results = dict(zip(variants, others, strict=True))
    table = paired_table([base, *results.values()]) if results else None
    verdicts = []
    for c in claims.claim:
        verdict, figure = _check(c, base.summary, lab)
        rec = ""
        if c.recommend is not None and (c.recommend.always or not verdict.startswith("holds")):
            after = results[_change_key(c)].summary
            new_verdict, new_figure = _check(c, after, lab)
            shown = c.recommend.path or c.path or (f"targets.{c.key}.value" if c.key else None)
            change = ""
            if shown:
                before_v = lookup(base.summary, shown, 0.0)
                after_v = lookup(after, shown, 0.0)
                change = f"{c.recommend.label or c.label or shown}: {_fmt(before_v)} -> {_fmt(after_v)}; "
            rec = f"{c.recommend.text}: {change}claim then {new_verdict} ({new_figure})"
            if new_verdict == "holds" and verdict in ("fails", "not shown"):
                verdict = f"holds only if {c.recommend.text}"
        verdicts.append(Verdict(c, verdict, figure, rec))
    return spec, verdicts, table
