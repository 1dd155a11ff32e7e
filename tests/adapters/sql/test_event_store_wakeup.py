"""Subscribers see appends made by another store instance (another process, in effect):
on PostgreSQL through LISTEN/NOTIFY (the fallback poll is set far beyond the test's patience),
on SQLite by polling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports import NewEvent, RecordedEvent
from tests.support.postgres import drop_tables


async def _cross_instance(reader: object, writer: object) -> float:
    got: list[int] = []

    async def handler(event: RecordedEvent) -> None:
        got.append(event.position)

    await reader.start()  # type: ignore[attr-defined]
    await writer.start()  # type: ignore[attr-defined]
    sub = await reader.subscribe(handler)  # type: ignore[attr-defined]
    await asyncio.sleep(0.1)  # the subscription is idle, waiting
    started = time.monotonic()
    result = await writer.append("s", [NewEvent("E")])  # type: ignore[attr-defined]
    await sub.wait_until(result.positions[-1], timeout=5)
    elapsed = time.monotonic() - started
    await reader.unsubscribe(sub)  # type: ignore[attr-defined]
    await writer.aclose()  # type: ignore[attr-defined]
    await reader.aclose()  # type: ignore[attr-defined]
    assert got == [1]
    return elapsed


def test_postgres_notify_wakes_other_instances(postgres_url: str, unique_name: str) -> None:
    table = f"{unique_name}_wake"
    try:
        reader = PostgresEventStore(postgres_url, table=table, pool_size=1, poll_interval=60)
        writer = PostgresEventStore(postgres_url, table=table, pool_size=1)
        elapsed = asyncio.run(_cross_instance(reader, writer))
        assert elapsed < 2, f"woken after {elapsed:.2f}s: NOTIFY did not arrive"
    finally:
        drop_tables(postgres_url, [table])


def test_sqlite_polling_sees_other_instances(tmp_path: Path) -> None:
    reader = SQLiteEventStore(tmp_path / "e.db", poll_interval=0.05)
    writer = SQLiteEventStore(tmp_path / "e.db")
    assert asyncio.run(_cross_instance(reader, writer)) < 2
