"""``portfolio-core migrate FILE``: print FILE upgraded to the current schema_version.

Only that file is migrated (not what it extends). Comments are not preserved; ``--write``
replaces the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from portfolio_core.manifest._commands import report
from portfolio_core.manifest._tree import LMap, load_yaml_file, to_plain
from portfolio_core.manifest.errors import ManifestError, Origin, Problem
from portfolio_core.manifest.migrations import migrate_tree


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the manifest to migrate")
    parser.add_argument("--write", action="store_true", help="rewrite FILE in place")


def migrate_text(path: Path) -> tuple[str, list[str]]:
    """The migrated YAML of ``path`` and the notices of what changed; raises ManifestError."""
    problems: list[Problem] = []
    tree = load_yaml_file(path, str(path), problems, Origin(str(path)))
    if not problems and not isinstance(tree, LMap):
        problems.append(
            Problem("invalid-manifest", "a manifest must be a mapping", (), Origin(str(path), 1, 1))
        )
    if problems or not isinstance(tree, LMap):
        raise ManifestError(problems)
    context = migrate_tree(tree, problems, default_version=None)
    if problems:
        raise ManifestError(problems)
    text = yaml.safe_dump(to_plain(tree), sort_keys=False, allow_unicode=True)
    return text, [f"{origin.location}: {message}" for origin, message in context.notices]


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text, notices = migrate_text(path)
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
