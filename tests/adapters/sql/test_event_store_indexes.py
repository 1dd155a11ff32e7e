"""Optional indexes of the SQL event stores: only what is configured is built (by default
just the partial correlation index), unknown names are refused, and queries that would use
a missing index still answer the same."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.event_store import EventQuery, NewEvent
from tests.support.postgres import drop_tables


def sqlite_indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
    return {r[0] for r in rows}


async def fill_and_query(store: object) -> list[int]:
    await store.append("a", [NewEvent("X", {"k": 1}), NewEvent("Y", {"k": 2})])  # type: ignore[attr-defined]
    await store.append("b", [NewEvent("X", {"k": 2}, correlation_id="c")])  # type: ignore[attr-defined]
    found = await store.query(EventQuery(types=frozenset({"X"}), data={"k": 2}))  # type: ignore[attr-defined]
    return [e.position for e in found]


@pytest.mark.parametrize(
    ("indexes", "built"),
    [
        (None, {"ev_correlation"}),
        ([], set()),
        (["type", "correlation"], {"ev_type", "ev_correlation"}),
    ],
)
async def test_sqlite_builds_the_configured_indexes(
    tmp_path: Path, indexes: list[str] | None, built: set[str]
) -> None:
    kwargs = {} if indexes is None else {"indexes": indexes}
    store = SQLiteEventStore(tmp_path / "e.db", table="ev", **kwargs)  # type: ignore[arg-type]
    await store.start()
    assert await fill_and_query(store) == [3], "a query without its index answered wrongly"
    await store.aclose()
    assert sqlite_indexes(tmp_path / "e.db") == built


@pytest.mark.parametrize("bad", ["time", "data", "colour"])
def test_sqlite_refuses_indexes_it_does_not_have(bad: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        SQLiteEventStore(":memory:", indexes=[bad])
    assert info.value.field == "indexes"


@pytest.fixture
def pg_table(postgres_url: str, unique_name: str) -> Iterator[str]:
    yield f"{unique_name}_ev"
    drop_tables(postgres_url, [f"{unique_name}_ev"])


async def pg_indexes(url: str, table: str) -> set[str]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,)
        )
        names = {r[0] for r in await cursor.fetchall()}
    return {n.removeprefix(table + "_") for n in names}


@pytest.mark.parametrize(
    ("indexes", "optional"),
    [
        (None, {"correlation"}),
        (
            ["type", "correlation", "time", "data", "metadata"],
            {"type", "correlation", "time", "data", "metadata"},
        ),
    ],
)
async def test_postgres_builds_the_configured_indexes(
    postgres_url: str, pg_table: str, indexes: list[str] | None, optional: set[str]
) -> None:
    kwargs = {} if indexes is None else {"indexes": indexes}
    store = PostgresEventStore(postgres_url, table=pg_table, pool_size=1, **kwargs)  # type: ignore[arg-type]
    await store.start()
    try:
        assert await fill_and_query(store) == [3]
    finally:
        await store.aclose()
    always = {"pk", "stream_version", "event_id"}
    assert await pg_indexes(postgres_url, pg_table) == always | optional


def test_postgres_refuses_unknown_indexes() -> None:
    with pytest.raises(InvalidInputError) as info:
        PostgresEventStore("postgresql://x@127.0.0.1/x", indexes=["type", "gist"])
    assert info.value.field == "indexes"
