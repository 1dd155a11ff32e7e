"""The SQLite and PostgreSQL config stores pass the ConfigStore contract suite, and two
handles on one store (two processes, in effect) see each other's changes."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portfolio_core.adapters._shared.config_store import Change
from portfolio_core.adapters.sql.config_store import (
    PostgresConfigStore,
    SQLiteConfigStore,
    _SQLConfigStore,
)
from portfolio_core.ports import CorruptDataError
from portfolio_core.testing.contracts.config_store import ConfigStoreContract
from tests.adapters.config_store_support import (
    drop_tables,
    times_never_decrease_across_handles,
    two_handles_see_each_other,
)


class TestSQLiteConfigStore(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[..., SQLiteConfigStore]:
        counter = itertools.count()

        def make(
            schemas: dict[str, object] | None = None, wall_clock: Callable[[], float] = time.time
        ) -> SQLiteConfigStore:
            return SQLiteConfigStore(
                tmp_path / f"config-{next(counter)}.db", schemas=schemas, wall_clock=wall_clock
            )

        return make


class TestPostgresConfigStore(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(
        self, postgres_url: str, unique_name: str
    ) -> Iterator[Callable[..., PostgresConfigStore]]:
        tables: list[str] = []
        counter = itertools.count()

        def make(
            schemas: dict[str, object] | None = None, wall_clock: Callable[[], float] = time.time
        ) -> PostgresConfigStore:
            tables.append(f"{unique_name}_cfg{next(counter)}")
            return PostgresConfigStore(
                postgres_url, table=tables[-1], schemas=schemas, wall_clock=wall_clock
            )

        yield make
        drop_tables(postgres_url, tables)


def test_two_sqlite_handles_share_one_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        a = SQLiteConfigStore(tmp_path / "c.db", poll_interval=0.05)
        b = SQLiteConfigStore(tmp_path / "c.db", poll_interval=0.05)
        try:
            await two_handles_see_each_other(a, b)
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(scenario())


def test_two_postgres_handles_share_one_table(postgres_url: str, unique_name: str) -> None:
    async def scenario() -> None:
        a = PostgresConfigStore(postgres_url, table=unique_name)
        b = PostgresConfigStore(postgres_url, table=unique_name)
        try:
            await two_handles_see_each_other(a, b)
        finally:
            await a.aclose()
            await b.aclose()

    try:
        asyncio.run(scenario())
    finally:
        drop_tables(postgres_url, [unique_name])


def test_sqlite_times_never_decrease_across_handles(tmp_path: Path) -> None:
    asyncio.run(
        times_never_decrease_across_handles(
            lambda clock: SQLiteConfigStore(tmp_path / "c.db", wall_clock=clock)
        )
    )


def test_postgres_times_never_decrease_across_handles(postgres_url: str, unique_name: str) -> None:
    try:
        asyncio.run(
            times_never_decrease_across_handles(
                lambda clock: PostgresConfigStore(postgres_url, table=unique_name, wall_clock=clock)
            )
        )
    finally:
        drop_tables(postgres_url, [unique_name])


def test_a_damaged_row_is_refused_not_skipped(tmp_path: Path) -> None:
    import sqlite3

    async def write() -> None:
        store = SQLiteConfigStore(tmp_path / "c.db")
        await store.apply({"a": 1})
        await store.apply({"a": 2})
        await store.aclose()

    asyncio.run(write())
    with sqlite3.connect(tmp_path / "c.db") as conn:
        conn.execute("UPDATE pc_config SET body = 'garbage' WHERE version = 2")

    async def read() -> None:
        store = SQLiteConfigStore(tmp_path / "c.db")
        try:
            with pytest.raises(CorruptDataError) as info:
                await store.get("a")
            assert info.value.record == 2
        finally:
            await store.aclose()

    asyncio.run(read())


def test_an_sql_store_without_a_way_to_read_rows_cannot_be_built() -> None:
    class Incomplete(_SQLConfigStore):
        async def _commit(
            self,
            changes: tuple[Change, ...],
            expected: int | None,
            author: str,
            reason: str,
            rollback_of: int | None,
        ) -> int:
            return 0

    with pytest.raises(TypeError, match="_rows_after"):
        Incomplete(table="cfg", schemas=None, max_value_bytes=1024, poll_interval=1.0)  # type: ignore[abstract]
