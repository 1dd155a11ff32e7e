"""The SQLite and PostgreSQL projection stores pass the ProjectionStore contract suite."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.sql.projection_store import (
    PostgresProjectionStore,
    SQLiteProjectionStore,
)
from portfolio_core.testing.contracts.projection_store import ProjectionStoreContract
from tests.support.postgres import drop_tables


class TestSQLiteProjectionStore(ProjectionStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[..., SQLiteProjectionStore]:
        counter = itertools.count()

        def make(clock: Any = None) -> SQLiteProjectionStore:
            return SQLiteProjectionStore(tmp_path / f"p-{next(counter)}.db", clock=clock)

        return make


class TestPostgresProjectionStore(ProjectionStoreContract):
    @pytest.fixture
    def make_adapter(
        self, postgres_url: str, unique_name: str
    ) -> Iterator[Callable[[], PostgresProjectionStore]]:
        tables: list[str] = []
        counter = itertools.count()

        def make() -> PostgresProjectionStore:
            tables.append(f"{unique_name}_pr{next(counter)}")
            return PostgresProjectionStore(postgres_url, table=tables[-1])

        yield make
        drop_tables(postgres_url, tables)
