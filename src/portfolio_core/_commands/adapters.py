"""``portfolio-core adapters``: installed adapters per port, from entry points.

Each line shows the adapter name, its class, the distribution that installs it and, when the
entry point names an extra that is not installed, which one and how to install it. Exit
status 1 when a name is claimed by several distributions, 2 for an unknown ``--port``.
"""

from __future__ import annotations

import argparse
import sys

from portfolio_core.manifest import installed_adapters
from portfolio_core.manifest.errors import did_you_mean
from portfolio_core.manifest.extras import install_command, missing_extras
from portfolio_core.ports.catalogue import PORTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", default=None, help="only this port key")


def run(args: argparse.Namespace) -> int:
    keys = [p.key for p in PORTS]
    if args.port is not None and args.port not in keys:
        hint = did_you_mean(args.port, keys) or f"ports: {', '.join(keys)}"
        print(f"portfolio-core adapters: unknown port {args.port!r} ({hint})", file=sys.stderr)
        return 2
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
                dist: str | None = getattr(getattr(ep, "dist", None), "name", None)
                flag = "   CONFLICT: claimed by several distributions" if len(claims) > 1 else ""
                missing = missing_extras(ep.extras, dist) if ep.extras and dist else {}
                if missing and dist:
                    flag += (
                        f"   MISSING EXTRA {', '.join(missing)}: {install_command(missing, dist)}"
                    )
                print(f"    {name:<20} {ep.module}:{ep.attr}  [{dist or '?'}]{flag}")
            conflicts += len(claims) > 1
    return 1 if conflicts else 0
