"""``portfolio-core conformance --port <key> module:factory``: run the kit against a factory.

Prints one line per clause: passed, failed (with the first line of the failure) or skipped
(with the reason). Exit status 0 when no clause failed, 1 otherwise, 2 for bad arguments
(an unknown port, a factory that does not import or raises, an adapter of another port).
The engine is ``portfolio_core.testing.conformance``; this command needs the ``testing``
extra.
"""

from __future__ import annotations

import argparse
import json
import sys

from portfolio_core.ports.catalogue import PORTS
from portfolio_core.testing.conformance import preflight, run_suite

#: the extra this command needs (the CLI names it when one of its packages is missing)
EXTRA = "testing"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", required=True, choices=[p.key for p in PORTS], help="the port's catalogue key"
    )
    parser.add_argument(
        "factory", help="module:attribute of a callable returning a fresh, empty adapter"
    )
    parser.add_argument(
        "--max-examples", type=int, default=None, help="hypothesis examples per property"
    )
    parser.add_argument("-k", dest="keyword", default=None, help="only tests matching (pytest -k)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON lines")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show pytest's own output"
    )


def run(args: argparse.Namespace) -> int:
    try:
        preflight(args.port, args.factory)
    except ValueError as exc:
        print(f"portfolio-core conformance: {exc}", file=sys.stderr)
        return 2
    result = run_suite(
        args.port,
        args.factory,
        max_examples=args.max_examples,
        keyword=args.keyword,
        verbose=args.verbose,
    )
    reports = result.reports
    if not reports:
        print(result.output)
        print("portfolio-core conformance: no clause ran", file=sys.stderr)
        return 1
    if args.json:
        for r in reports:
            print(
                json.dumps(
                    {"clause": r.clause, "outcome": r.outcome, "detail": r.detail, "text": r.text}
                )
            )
    else:
        print(f"portfolio-core conformance: port {args.port}, factory {args.factory}")
        print(f"adapter: {result.adapter}")
        print(f"capabilities: {', '.join(sorted(result.capabilities)) or '(none declared)'}")
        for r in reports:
            line = f"  {r.outcome.upper():8} {r.clause}"
            if r.detail:
                line += f" - {r.detail}"
            print(line)
        counts: dict[str, int] = {}
        for r in reports:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        print(
            f"{len(reports)} clauses: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        )
    if result.status not in (0, 1) or (result.status == 1 and not result.failed):
        print(result.output)
        return 1
    return 1 if result.failed else 0
