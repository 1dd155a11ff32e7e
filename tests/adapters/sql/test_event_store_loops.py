"""One PostgreSQL event store instance serves the event loop that started it and refuses
calls from any other loop with a clear error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.ports.errors import UnavailableError
from portfolio_core.ports.event_store import NewEvent
from tests.support.postgres import drop_tables


@pytest.fixture
def pg_table(postgres_url: str, unique_name: str) -> Iterator[str]:
    yield f"{unique_name}_ev"
    drop_tables(postgres_url, [f"{unique_name}_ev"])


def test_postgres_store_refuses_a_second_event_loop(postgres_url: str, pg_table: str) -> None:
    """One instance serves the loop that started it; another loop gets a clear error, and
    the store keeps serving its own loop."""
    store = PostgresEventStore(postgres_url, table=pg_table, pool_size=1)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    thread = threading.Thread(
        target=lambda: (asyncio.set_event_loop(loop), ready.set(), loop.run_forever())
    )
    thread.start()
    ready.wait()
    try:
        asyncio.run_coroutine_threadsafe(store.start(), loop).result(30)
        asyncio.run_coroutine_threadsafe(store.append("s", [NewEvent("T", {})]), loop).result(30)

        async def elsewhere() -> None:
            with pytest.raises(UnavailableError) as info:
                await store.append("s", [NewEvent("T", {})])
            assert "one instance per event loop" in str(info.value)
            with pytest.raises(UnavailableError, match="one instance per event loop"):
                await store.read_all()

        asyncio.run(elsewhere())
        events = asyncio.run_coroutine_threadsafe(store.read_all(), loop).result(30)
        assert len(events) == 1, "the refused append was written, or the store broke"
    finally:
        asyncio.run_coroutine_threadsafe(store.aclose(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
