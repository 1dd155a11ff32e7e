"""``portfolio-core adapters``: installed adapters per port, from entry points."""

from __future__ import annotations

import argparse

from portfolio_core.manifest import installed_adapters
from portfolio_core.ports.catalogue import PORTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", default=None, help="only this port key")


def run(args: argparse.Namespace) -> int:
    conflicts = 0
    for port in PORTS:
        if args.port and port.key != args.port:
            continue
        found = installed_adapters(port)
        print(f"{port.key} ({port.entry_point_group}):")
        if not found:
            print("    (none installed)")
        for name in sorted(found):
            claims = found[name]
            for ep in claims:
                dist = getattr(getattr(ep, "dist", None), "name", "?")
                flag = "   CONFLICT: claimed by several distributions" if len(claims) > 1 else ""
                print(f"    {name:<20} {ep.value}  [{dist}]{flag}")
            conflicts += len(claims) > 1
    return 1 if conflicts else 0
