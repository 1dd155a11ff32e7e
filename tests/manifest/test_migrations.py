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
