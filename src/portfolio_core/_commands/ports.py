"""``portfolio-core ports``: list the ports with a one-line summary each."""

from __future__ import annotations

import argparse
import json

from portfolio_core.ports import PORTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.json:
        rows = [
            {
                "key": p.key,
                "name": p.name,
                "kind": "async" if p.is_async else "sync",
                "summary": p.summary,
                "entry_point_group": p.entry_point_group,
            }
            for p in PORTS
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(p.name) for p in PORTS)
    for p in PORTS:
        kind = "async" if p.is_async else "sync "
        print(f"{p.name:<{width}}  {kind}  {p.summary}")
    return 0
