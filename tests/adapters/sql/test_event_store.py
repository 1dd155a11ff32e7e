"""The SQLite and PostgreSQL event stores pass the EventStore contract suite."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.testing.contracts.event_store import EventStoreContract
from tests.support.postgres import drop_tables


class TestSQLiteEventStore(EventStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[[], SQLiteEventStore]:
        counter = itertools.count()
        return lambda: SQLiteEventStore(tmp_path / f"events-{next(counter)}.db")


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def make_adapter(
        self, postgres_url: str, unique_name: str
    ) -> Iterator[Callable[[], PostgresEventStore]]:
        tables: list[str] = []
        counter = itertools.count()

        def make() -> PostgresEventStore:
            tables.append(f"{unique_name}_ev{next(counter)}")
            return PostgresEventStore(postgres_url, table=tables[-1], pool_size=2)

        yield make
        drop_tables(postgres_url, tables)
