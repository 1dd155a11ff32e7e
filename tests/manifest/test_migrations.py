"""schema_version, migrations, deprecation warnings and ``portfolio-core migrate``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from portfolio_core.cli import main
from portfolio_core.manifest import ManifestDeprecationWarning, plan, register_migration

Write = Callable[[str, str], Path]
F = "tests.manifest.fakes"

OLD = f"""
schema_version: 0
services:
  store:
    port: cache
    type: {F}:DictCache
  front:
    port: cache
    type: {F}:DictCache
    options: {{namespace: front}}
    depends_on: [store]
"""


def test_old_schema_loads_with_located_deprecation_warnings(write: Write) -> None:
    path = write("old.yaml", OLD.replace("depends_on: [store]", "depends_on: {backing: store}"))
    with pytest.warns(ManifestDeprecationWarning) as caught:
        planned = plan(path, environ={})
    messages = [str(w.message) for w in caught]
    assert any("old.yaml:1:17: schema_version 0 is deprecated" in m for m in messages)
    assert any("old.yaml:2:1: 'services' is now 'adapters'" in m for m in messages)
    assert any(":9:5: adapters.front.options is now 'config'" in m for m in messages)
    assert planned.entries["front"].uses == {"backing": "store"}
    assert planned.entries["front"].config.namespace == "front"  # type: ignore[union-attr]


def test_migrate_command_prints_the_migrated_file(
    write: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write("old.yaml", OLD)
    assert main(["migrate", str(path)]) == 0
    out = capsys.readouterr()
    migrated = yaml.safe_load(out.out)
    assert migrated["schema_version"] == 1
    assert migrated["adapters"]["front"] == {
        "port": "cache",
        "adapter": f"{F}:DictCache",
        "config": {"namespace": "front"},
        "uses": {"store": "store"},
    }
    assert "is now 'adapters'" in out.err
    assert main(["migrate", str(path), "--write"]) == 0
    assert yaml.safe_load(path.read_text())["schema_version"] == 1


def test_registering_a_migration_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already exists"):
        register_migration(0)(lambda tree, context: None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "a manifest must be a mapping"),
        ("schema_version: one\n", "schema_version must be an integer, not 'one'"),
        ("schema_version: true\n", "schema_version must be an integer, not True"),
        ("schema_version: 99\n", "schema_version 99 is newer than this portfolio-core understands"),
    ],
)
def test_a_file_that_cannot_be_migrated_is_refused_with_its_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    from portfolio_core.manifest import ManifestError, migrate_file

    path = tmp_path / "old.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message):
        migrate_file(path)


def test_version_0_entries_that_are_not_mappings_are_left_for_validation(tmp_path: Path) -> None:
    from portfolio_core.manifest import migrate_file

    path = tmp_path / "old.yaml"
    path.write_text("schema_version: 0\nservices:\n  a: 3\n  b: {type: memory}\n")
    text, notices = migrate_file(path)
    assert "adapters:\n  a: 3\n  b:\n    adapter: memory\n" in text
    assert len(notices) == 3  # the version, 'services' and b's 'type'
    path.write_text("schema_version: 0\nadapters: 3\n")
    assert "adapters: 3" in migrate_file(path)[0]
