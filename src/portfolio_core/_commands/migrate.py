"""``portfolio-core migrate FILE``: print FILE upgraded to the current schema_version.

Only that file is migrated (not what it extends). Comments are not preserved; ``--write``
replaces the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from portfolio_core._commands._manifest import report
from portfolio_core.manifest import ManifestError, migrate_file


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the manifest to migrate")
    parser.add_argument("--write", action="store_true", help="rewrite FILE in place")


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text, notices = migrate_file(path)
    except ManifestError as exc:
        return report(exc)
    for notice in notices:
        print(notice, file=sys.stderr)
    if args.write:
        path.write_text(text, encoding="utf-8")
        print(f"{path}: migrated", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
