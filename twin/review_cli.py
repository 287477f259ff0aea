"""`twin review`: every claim of an HA design document checked (review/), as a table, Markdown or
one HTML file. Every claim's path is checked before the first simulation."""

from __future__ import annotations

import argparse
from pathlib import Path

from sim.spec import load_spec
from twin import usage


def cmd_review(args: argparse.Namespace) -> int:
    from review.claims import load_claims
    from review.engine import run_review
    from review.render import html_report, markdown, print_table
    from sim.plots import _availability
    from studies.compare import forest_plot

    path = Path(args.claims)
    claims = load_claims(path)
    for out in (args.markdown, args.html):
        if out:
            usage.check_writable(Path(out))
    tops = [Path(args.topology)] if args.topology else [path.parent / claims.review.topology]
    if args.recommended:
        tops.append(Path(args.recommended))
    from review.engine import check_paths

    for t in tops:
        check_paths(claims, path, load_spec(t), workers=args.workers)  # before any long run
    sides, figures = [], []
    for t in tops:
        bar, tick = usage.progress_bar(len(claims.claim), f"review {t.name}")
        with bar:
            spec, verdicts, table = run_review(claims, path, t, workers=args.workers, on_done=tick,
                                               years=args.years, replications=args.replications)
        name = "as written" if t == tops[0] else "as recommended"
        print_table(f"{name}: {spec.meta.name} ({spec.simulation.years:g} years x "
                    f"{spec.simulation.replications})", verdicts)
        sides.append((f"{name} ({spec.meta.name})", verdicts))
        from studies.evaluate import evaluate

        summary = evaluate(spec, workers=args.workers, progress=False).summary
        figures.append(lambda p, s=summary, n=spec.meta.name: _availability(s, p, n))
        if table is not None and t == tops[0]:
            figures.append(lambda p, df=table: forest_plot(df[df["metric"].isin(
                ["service downtime", "client-weighted downtime", "sessions lost"])], p,
                "each recommended change against the design as written (95 % CI)"))
    if args.markdown:
        usage.write_output(Path(args.markdown), markdown(sides))
    if args.html:
        usage.write_output(Path(args.html), html_report(sides, figures))
    return 0


def register(sub) -> None:
    r = sub.add_parser("review", help="check every claim of an HA design document")
    r.add_argument("claims", help="claims file (models/renata-claims.toml)")
    r.add_argument("--topology", metavar="SPEC", help="the design as written (default: the "
                   "claims file's [review] topology)")
    r.add_argument("--recommended", metavar="SPEC", help="also review this design, side by side")
    r.add_argument("--markdown", metavar="OUT")
    r.add_argument("--html", metavar="OUT", help="one self-contained file, plots inlined")
    r.add_argument("--workers", type=usage.positive_int)
    r.add_argument("--years", type=usage.positive_float, help="per replication (default: the claims file's)")
    r.add_argument("--replications", type=usage.positive_int)
    r.set_defaults(func=cmd_review)
