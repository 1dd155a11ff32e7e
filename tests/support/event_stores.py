"""Event stores of every adapter, for tests that check a behaviour across all of them.

``event_store_kinds`` names them; :func:`make_event_store` opens one, fresh and empty (the
PostgreSQL one asks for the ``postgres_url`` fixture, so it skips with a reason when no
server is configured, and drops its table afterwards).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.file.event_store import FileEventStore
from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore

EVENT_STORE_KINDS = ("memory", "file", "sqlite", "postgres")


@asynccontextmanager
async def make_event_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> AsyncIterator[Any]:
    """A started, empty event store of ``kind``, closed (and its table dropped) on exit."""
    url = ""
    store: Any
    if kind == "memory":
        store = MemoryEventStore()
    elif kind == "file":
        store = FileEventStore(tmp_path / f"{name}.log")
    elif kind == "sqlite":
        store = SQLiteEventStore(tmp_path / f"{name}.db")
    elif kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        store = PostgresEventStore(url, table=f"{name}_ev", pool_size=2)
    else:  # pragma: no cover - a typo in a test
        raise ValueError(kind)
    start = getattr(store, "start", None)
    if start is not None:
        await start()
    try:
        yield store
    finally:
        await store.aclose()
        if url:
            import psycopg

            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"DROP TABLE IF EXISTS {name}_ev")
