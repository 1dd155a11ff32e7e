"""The SQL event stores live in one module per adapter; the former module path still works,
with a DeprecationWarning, and the manifest names resolve to the new modules."""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

import pytest

from portfolio_core.adapters.sql import postgres_event_store, sqlite_event_store


def test_old_import_path_warns_and_re_exports_both_stores() -> None:
    old = "portfolio_core.adapters.sql.event_store"
    sys.modules.pop(old, None)
    with pytest.deprecated_call(match="moved to portfolio_core.adapters.sql.sqlite_event_store"):
        shim = importlib.import_module(old)
    assert shim.SQLiteEventStore is sqlite_event_store.SQLiteEventStore
    assert shim.SQLiteEventStoreConfig is sqlite_event_store.SQLiteEventStoreConfig
    assert shim.PostgresEventStore is postgres_event_store.PostgresEventStore
    assert shim.PostgresEventStoreConfig is postgres_event_store.PostgresEventStoreConfig
    assert sorted(shim.__all__) == sorted(
        [*sqlite_event_store.__all__, *postgres_event_store.__all__]
    )


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("sqlite", "portfolio_core.adapters.sql.sqlite_event_store"),
        ("postgres", "portfolio_core.adapters.sql.postgres_event_store"),
    ],
)
def test_manifest_names_resolve_to_the_adapter_modules(name: str, module: str) -> None:
    (found,) = entry_points(group="portfolio_core.adapters.event_store", name=name)
    assert found.module == module
