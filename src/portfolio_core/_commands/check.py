"""``portfolio-core check FILE``: validate and build a manifest; list every problem."""

from __future__ import annotations

import argparse
import asyncio

from portfolio_core._commands._manifest import add_manifest_arguments, overrides_of, report
from portfolio_core.manifest import ManifestError
from portfolio_core.registry import Registry


def configure(parser: argparse.ArgumentParser) -> None:
    add_manifest_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        registry = Registry.from_manifest(
            args.file, profile=args.profile, overrides=overrides_of(args)
        )
    except ManifestError as exc:
        return report(exc)
    count = len(registry.names())
    asyncio.run(registry.aclose())
    print(f"{args.file}: ok ({count} adapter{'s' if count != 1 else ''} wired)")
    return 0
