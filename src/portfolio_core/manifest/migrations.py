"""``schema_version`` and the migrations between versions.

Each file of an ``extends`` chain is migrated on its own to `CURRENT_SCHEMA_VERSION`
before merging. A migration is a function registered for the version it upgrades *from*;
it edits the located tree in place (``LMap.rename`` keeps line numbers) and reports every
old key it rewrote through ``context.deprecated``, which becomes a
`ManifestDeprecationWarning` pointing at the line.
``portfolio-core migrate FILE`` prints the migrated file.

Version history:

* ``0`` (pre-release drafts): ``services:`` instead of ``adapters:``; per entry ``type:``,
  ``options:`` and ``depends_on:`` instead of ``adapter:``, ``config:`` and ``uses:``.
* ``1``: the current format (docs/manifest.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from portfolio_core.manifest._tree import LMap, load_yaml_file, to_plain
from portfolio_core.manifest.errors import ManifestError, Origin, Problem

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "MigrationContext",
    "migrate_file",
    "migrate_tree",
    "register_migration",
]

CURRENT_SCHEMA_VERSION = 1


@dataclass
class MigrationContext:
    """Collects what a migration rewrote, as (origin, message) deprecation notices."""

    source: str
    notices: list[tuple[Origin, str]] = field(default_factory=list)

    def deprecated(self, origin: Origin, message: str) -> None:
        self.notices.append((origin, message))


Migration = Callable[[LMap, MigrationContext], None]
_MIGRATIONS: dict[int, Migration] = {}


def register_migration(from_version: int) -> Callable[[Migration], Migration]:
    """Register the function that upgrades a tree from ``from_version`` to the next one."""

    def decorator(function: Migration) -> Migration:
        if from_version in _MIGRATIONS:
            raise ValueError(f"a migration from schema_version {from_version} already exists")
        _MIGRATIONS[from_version] = function
        return function

    return decorator


@register_migration(0)
def _services_to_adapters(tree: LMap, context: MigrationContext) -> None:
    if "services" in tree and "adapters" not in tree:
        context.deprecated(tree.key_origins["services"], "'services' is now 'adapters'")
        tree.rename("services", "adapters")
    entries = tree.get("adapters")
    if not isinstance(entries, LMap):
        return
    for name, entry in entries.items():
        if not isinstance(entry, LMap):
            continue
        for old, new in (("type", "adapter"), ("options", "config"), ("depends_on", "uses")):
            if old in entry and new not in entry:
                context.deprecated(entry.key_origins[old], f"adapters.{name}.{old} is now '{new}'")
                entry.rename(old, new)
        uses = entry.get("uses")
        if isinstance(uses, list):  # depends_on was a list of names: name them by themselves
            mapped = LMap(entry.value_origins["uses"])
            for index, item in enumerate(uses):
                origin = uses.origins[index] if hasattr(uses, "origins") else mapped.origin
                if isinstance(item, str):
                    mapped.set(item, item, origin, origin)
            entry["uses"] = mapped


def migrate_tree(
    tree: LMap, problems: list[Problem], *, default_version: int | None
) -> MigrationContext:
    """Upgrade ``tree`` in place to the current version.

    ``default_version`` applies when the file has no ``schema_version`` (``None``: it is
    required, and its absence is a problem). Problems are appended for an invalid or too new
    version, or a version no migration chain reaches.
    """
    context = MigrationContext(tree.origin.source)
    raw = tree.get("schema_version", default_version)
    origin = tree.value_origins.get("schema_version", tree.origin)
    if raw is None:
        problems.append(
            Problem(
                "missing-schema-version",
                "schema_version is required",
                (),
                tree.origin,
                f"add 'schema_version: {CURRENT_SCHEMA_VERSION}' at the top",
            )
        )
        return context
    if isinstance(raw, bool) or not isinstance(raw, int):
        problems.append(
            Problem(
                "invalid-schema-version",
                f"schema_version must be an integer, not {raw!r}",
                ("schema_version",),
                origin,
            )
        )
        return context
    if raw > CURRENT_SCHEMA_VERSION:
        problems.append(
            Problem(
                "invalid-schema-version",
                f"schema_version {raw} is newer than this portfolio-core understands "
                f"({CURRENT_SCHEMA_VERSION})",
                ("schema_version",),
                origin,
                "upgrade portfolio-core",
            )
        )
        return context
    version = raw
    if version < CURRENT_SCHEMA_VERSION:
        context.deprecated(
            origin,
            f"schema_version {version} is deprecated; run 'portfolio-core migrate "
            f"{tree.origin.source}'",
        )
    while version < CURRENT_SCHEMA_VERSION:
        migration = _MIGRATIONS.get(version)
        if migration is None:
            problems.append(
                Problem(
                    "invalid-schema-version",
                    f"no migration from schema_version {version}",
                    ("schema_version",),
                    origin,
                )
            )
            return context
        migration(tree, context)
        version += 1
    if "schema_version" in tree:
        tree["schema_version"] = CURRENT_SCHEMA_VERSION
    return context


def migrate_file(path: str | os.PathLike[str]) -> tuple[str, list[str]]:
    """``path`` upgraded to ``CURRENT_SCHEMA_VERSION``: its YAML text and one notice
    (``file:line:column: what changed``) per rewritten key. Only that file is migrated, not
    what it extends; comments are not kept. Raises ``ManifestError``."""
    file = Path(path)
    problems: list[Problem] = []
    tree = load_yaml_file(file, str(file), problems, Origin(str(file)))
    if not problems and not isinstance(tree, LMap):
        problems.append(
            Problem("invalid-manifest", "a manifest must be a mapping", (), Origin(str(file), 1, 1))
        )
    if problems or not isinstance(tree, LMap):
        raise ManifestError(problems)
    context = migrate_tree(tree, problems, default_version=None)
    if problems:
        raise ManifestError(problems)
    text = yaml.safe_dump(to_plain(tree), sort_keys=False, allow_unicode=True)
    return text, [f"{origin.location}: {message}" for origin, message in context.notices]
