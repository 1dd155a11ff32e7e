"""Configurable: an adapter whose config fields are exactly its constructor's keywords is
built from a manifest by passing its config through."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters.sql.snapshot_store import (
    SQLiteSnapshotStore,
    SQLiteSnapshotStoreConfig,
)

_MODULES = [
    "portfolio_core.adapters.file.cache",
    "portfolio_core.adapters.file.cache_persistence",
    "portfolio_core.adapters.file.config_store",
    "portfolio_core.adapters.file.event_store",
    "portfolio_core.adapters.file.snapshot_store",
    "portfolio_core.adapters.file.stream",
    "portfolio_core.adapters.local.byte_tokenizer",
    "portfolio_core.adapters.memory.cache",
    "portfolio_core.adapters.memory.config_store",
    "portfolio_core.adapters.memory.event_store",
    "portfolio_core.adapters.memory.job_queue",
    "portfolio_core.adapters.memory.snapshot_store",
    "portfolio_core.adapters.redis.cache",
    "portfolio_core.adapters.redis.config_store",
    "portfolio_core.adapters.redis.job_queue",
    "portfolio_core.adapters.redis.snapshot_store",
    "portfolio_core.adapters.redis.stream",
    "portfolio_core.adapters.sql.cache",
    "portfolio_core.adapters.sql.config_store",
    "portfolio_core.adapters.sql.postgres_job_queue",
    "portfolio_core.adapters.sql.projection_store",
    "portfolio_core.adapters.sql.snapshot_store",
    "portfolio_core.adapters.sql.sqlite_job_queue",
]


def _configurable_adapters() -> list[type[Configurable]]:
    for name in _MODULES:
        importlib.import_module(name)
    found: list[type[Configurable]] = []
    todo = list(Configurable.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "config_model" in vars(cls):
            found.append(cls)
    return sorted(set(found), key=lambda c: c.__qualname__)


def test_from_config_passes_every_field_to_the_constructor(tmp_path: Path) -> None:
    config = SQLiteSnapshotStoreConfig(
        path=str(tmp_path / "snaps.db"), table="other", max_snapshot_bytes=1234, busy_timeout=2.5
    )
    store = SQLiteSnapshotStore.from_config(config)
    assert isinstance(store, SQLiteSnapshotStore)
    assert (store.path, store.table, store.max_snapshot_bytes, store.busy_timeout) == (
        tmp_path / "snaps.db",
        "other",
        1234,
        2.5,
    )


def test_the_constructors_errors_pass_through() -> None:
    config = SQLiteSnapshotStoreConfig(path="x.db", table="not a table name")
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        SQLiteSnapshotStore.from_config(config)


@pytest.mark.parametrize("adapter", _configurable_adapters(), ids=lambda c: c.__qualname__)
def test_every_config_field_is_a_constructor_keyword(adapter: type[Configurable]) -> None:
    params = inspect.signature(adapter.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    missing = set(adapter.config_model.model_fields) - set(params)
    if takes_any:  # passes **options on: the base class must take them
        base_params = inspect.signature(adapter.__mro__[1].__init__).parameters
        missing -= set(base_params)
    assert not missing, f"{adapter.__qualname__}.from_config would pass unknown {missing}"
