"""EventStore adapters are reachable by entry point and build from their config models."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pydantic import ValidationError

from portfolio_core.adapters.sql.postgres_event_store import (
    PostgresEventStore,
    PostgresEventStoreConfig,
)
from portfolio_core.ports import EventStore, NewEvent


def test_entry_points_resolve(tmp_path: Path) -> None:
    found = {ep.name: ep.load() for ep in entry_points(group="portfolio_core.adapters.event_store")}
    assert set(found) >= {"memory", "file", "sqlite", "postgres"}
    configs = {
        "memory": {},
        "file": {"path": str(tmp_path / "e.log")},
        "sqlite": {"path": str(tmp_path / "e.db")},
    }

    async def use(cls: type, config: dict[str, object]) -> None:
        store = cls.from_config(cls.config_model.model_validate(config))
        assert isinstance(store, EventStore)
        if hasattr(store, "start"):
            await store.start()
        await store.append("s", [NewEvent("E")])
        assert len(await store.read("s")) == 1
        await store.aclose()
        await store.aclose()  # idempotent

    for name, config in configs.items():
        asyncio.run(use(found[name], config))


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        PostgresEventStoreConfig.model_validate({"url": "postgresql://x", "tabel": "t"})


def test_password_never_in_repr() -> None:
    config = PostgresEventStoreConfig.model_validate(
        {"url": "postgresql://app:s3cret@db:5432/x", "table": "ev"}
    )
    store = PostgresEventStore.from_config(config)
    assert "s3cret" not in repr(store)
    assert "s3cret" not in repr(config)
