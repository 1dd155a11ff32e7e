"""recorded_at never decreases along positions, even when another writer's clock runs ahead
(another process or server wrote the last event): the next append takes that time, and time
range queries stay exact."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports import EventQuery, NewEvent
from tests.support.postgres import drop_tables

AHEAD = timedelta(hours=1)


def _row(position: int, at: datetime) -> tuple[object, ...]:
    micros = int(at.timestamp() * 1_000_000)
    return ("", position, "other", 1, f"id-{position}", "E", "{}", "{}", None, None, micros)


async def _check_follows_the_clock_ahead(
    store: SQLiteEventStore | PostgresEventStore, ahead: datetime
) -> None:
    after = await store.append("mine", [NewEvent("E")])
    mine = (await store.read("mine"))[0]
    assert mine.position == after.positions[0] == 3
    assert mine.recorded_at >= ahead - timedelta(microseconds=1), (
        f"recorded_at {mine.recorded_at} went back behind the previous event's {ahead}"
    )
    everything = await store.read_all()
    assert [e.recorded_at for e in everything] == sorted(e.recorded_at for e in everything)
    got = await store.query(EventQuery(since=ahead - timedelta(seconds=1)))
    assert [e.position for e in got] == [2, 3]
    got = await store.query(EventQuery(until=ahead - timedelta(seconds=1)))
    assert [e.position for e in got] == [1]


async def test_sqlite_append_after_a_clock_ahead(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    try:
        await store.append("first", [NewEvent("E")])
        ahead = datetime.now(UTC) + AHEAD
        other = sqlite3.connect(store.path)  # another process, whose clock is an hour ahead
        with other:
            other.execute(
                "INSERT INTO pc_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _row(2, ahead)
            )
        other.close()
        await _check_follows_the_clock_ahead(store, ahead)
    finally:
        await store.aclose()


def test_postgres_append_after_a_clock_ahead(postgres_url: str, unique_name: str) -> None:
    table = f"{unique_name}_clock"

    async def scenario() -> None:
        import psycopg

        store = PostgresEventStore(postgres_url, table=table, pool_size=1)
        try:
            await store.append("first", [NewEvent("E")])
            ahead = datetime.now(UTC) + AHEAD
            async with await psycopg.AsyncConnection.connect(postgres_url) as other:
                await other.execute(
                    f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    _row(2, ahead),
                )
                await other.commit()
            await _check_follows_the_clock_ahead(store, ahead)
        finally:
            await store.aclose()

    try:
        asyncio.run(scenario())
    finally:
        drop_tables(postgres_url, [table])
