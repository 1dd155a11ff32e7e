"""``portfolio-core recover PATH``: salvage a damaged file event log, config log or file cache.

For an event log or a config store's log (a file; its header tells which), every record that
passes its checksum is copied into a new log (``PATH.recovered`` unless ``--output`` says
otherwise); the damaged log is kept as it is. For a file cache (a directory), every entry
that fails its checksum is moved into a ``.damaged`` folder beside it, so the cache serves
the intact entries again. Nothing is ever deleted. Exit status: 0 when nothing was damaged,
1 when something was salvaged around damage, 2 when the path cannot be recovered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portfolio_core.adapters.file.recovery import ConfigLogSalvage, LogSalvage


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        metavar="PATH",
        type=Path,
        help="a file event log, a file config log, or a file cache directory",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the salvaged log (default: PATH.recovered; must not exist)",
    )


def run(args: argparse.Namespace) -> int:
    from portfolio_core.adapters.file.recovery import (
        is_config_log,
        salvage_config_log,
        salvage_event_log,
        salvage_file_cache,
    )
    from portfolio_core.ports.errors import InvalidInputError

    path: Path = args.path
    try:
        if path.is_dir():
            cache = salvage_file_cache(path)
            for source, moved in cache.moved:
                print(f"damaged entry moved aside: {source} -> {moved}")
            print(f"{cache.checked} cache entries checked, {len(cache.moved)} damaged")
            return 1 if cache.moved else 0
        target = args.output or path.with_name(path.name + ".recovered")
        if is_config_log(path):
            config = salvage_config_log(path, target)
            return _report(
                config,
                f"{config.versions} config versions",
                "versions after the damage were renumbered (1, 2, 3, ... again)",
            )
        log = salvage_event_log(path, target)
    except (InvalidInputError, OSError) as exc:
        print(f"cannot recover {path}: {exc}", file=sys.stderr)
        return 2
    return _report(
        log,
        f"{log.records} records ({log.events} events)",
        "positions and stream versions after the damage were renumbered; ids are kept",
    )


def _report(log: LogSalvage | ConfigLogSalvage, written: str, renumbered: str) -> int:
    """Print what a salvage wrote and lost; 1 when something was lost, else 0."""
    for offset, length in log.lost:
        print(f"unreadable: {length} bytes at offset {offset}")
    print(f"{written} written to {log.target}")
    if log.renumbered:
        print(renumbered)
    print(f"the original log is unchanged: {log.source}")
    if log.lost:
        print(f"to use the salvaged log, move it over {log.source} once the store is stopped")
    return 1 if log.lost else 0
