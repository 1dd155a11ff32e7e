"""The SQLite and PostgreSQL snapshot stores pass the SnapshotStore contract suite and keep
snapshots across instances."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portfolio_core.adapters.sql._sqlite import SQLiteTableStore
from portfolio_core.adapters.sql.snapshot_store import PostgresSnapshotStore, SQLiteSnapshotStore
from portfolio_core.ports.errors import UnavailableError
from portfolio_core.ports.snapshot_store import Snapshot
from portfolio_core.testing.contracts.snapshot_store import SnapshotStoreContract
from tests.support.postgres import drop_tables


class TestSQLiteSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[[], SQLiteSnapshotStore]:
        counter = itertools.count()
        return lambda: SQLiteSnapshotStore(tmp_path / f"snaps-{next(counter)}.db")


class TestPostgresSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def make_adapter(
        self, postgres_url: str, unique_name: str
    ) -> Iterator[Callable[[], PostgresSnapshotStore]]:
        tables: list[str] = []
        counter = itertools.count()

        def make() -> PostgresSnapshotStore:
            tables.append(f"{unique_name}_sn{next(counter)}")
            return PostgresSnapshotStore(postgres_url, table=tables[-1])

        yield make
        drop_tables(postgres_url, tables)


async def test_sqlite_keeps_snapshots_across_instances(tmp_path: Path) -> None:
    first = SQLiteSnapshotStore(tmp_path / "s.db")
    await first.save(Snapshot("order-1", 3, {"n": 3}))
    await first.aclose()
    second = SQLiteSnapshotStore(tmp_path / "s.db")
    try:
        loaded = await second.load("order-1")
        assert loaded is not None
        assert (loaded.version, loaded.state) == (3, {"n": 3})
    finally:
        await second.aclose()


@pytest.fixture
def pg_table(postgres_url: str, unique_name: str) -> Iterator[str]:
    yield f"{unique_name}_sn"
    drop_tables(postgres_url, [f"{unique_name}_sn"])


async def test_postgres_keeps_snapshots_across_instances(postgres_url: str, pg_table: str) -> None:
    first = PostgresSnapshotStore(postgres_url, table=pg_table)
    await first.save(Snapshot("order-1", 3, {"n": "\x00 is kept"}))
    await first.aclose()
    second = PostgresSnapshotStore(postgres_url, table=pg_table)
    try:
        loaded = await second.load("order-1")
        assert loaded is not None
        assert loaded.state == {"n": "\x00 is kept"}
    finally:
        await second.aclose()


def test_postgres_refuses_a_second_event_loop(postgres_url: str, pg_table: str) -> None:
    store = PostgresSnapshotStore(postgres_url, table=pg_table)
    asyncio.run(store.save(Snapshot("s", 1, {})))
    with pytest.raises(UnavailableError, match="one instance per event loop"):
        asyncio.run(store.load("s"))


def test_a_sqlite_table_store_without_a_schema_cannot_be_built(tmp_path: Path) -> None:
    class Schemaless(SQLiteTableStore):
        _what = "schemaless store"
        _thread_name = "schemaless"
        _port = "SnapshotStore"

    with pytest.raises(TypeError, match="_schema"):
        Schemaless(tmp_path / "s.db", table="t", busy_timeout=1.0)  # type: ignore[abstract]
