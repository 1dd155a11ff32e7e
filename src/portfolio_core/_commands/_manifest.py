"""What the manifest-driven subcommands (check, describe, health) share: the FILE,
``--profile`` and ``--set`` arguments and how a ``ManifestError`` is reported."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import yaml

from portfolio_core.manifest import ManifestError

__all__ = ["add_manifest_arguments", "overrides_of", "report"]


def add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the manifest (YAML)")
    parser.add_argument(
        "--profile",
        default=None,
        help="profile(s) to apply, comma separated (default: $PORTFOLIO_CORE_PROFILE)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="explicit override, e.g. adapters.cache.config.max_entries=10 (repeatable)",
    )


def overrides_of(args: argparse.Namespace) -> dict[str, object]:
    """The ``--set`` overrides; also puts the working directory on ``sys.path`` (as
    ``python -m`` does) so that ``module:Class`` references to local modules resolve."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    out: dict[str, object] = {}
    for item in args.overrides:
        path, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects PATH=VALUE, got {item!r}")
        parsed: Any = yaml.safe_load(value) if value else ""
        out[path] = parsed
    return out


def report(error: ManifestError) -> int:
    print(str(error), file=sys.stderr)
    return 1
