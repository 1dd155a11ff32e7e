"""PostgreSQL goes down (a loopback proxy the test controls cuts it off) and comes back while
an application appends through the outbox: afterwards every acknowledged append is in the
event store exactly once, in order per stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.boundary import OutboxAcceptedError, outbox_of, wrap
from portfolio_core.ports import AppendResult, NewEvent, NotFoundError, PortError, port_by_key
from portfolio_core.testing.faults import FaultProxy

BOUND = 60.0


@pytest.fixture
def table(postgres_url: str, unique_name: str) -> Iterator[str]:
    name = f"{unique_name}_events"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


async def test_acknowledged_appends_survive_an_outage_exactly_once_in_order(
    postgres_url: str, table: str, tmp_path: Path
) -> None:
    proxy = await FaultProxy(postgres_url).start()
    store = PostgresEventStore(proxy.url(postgres_url), table=table, pool_size=2)
    events = wrap(
        store,
        port=port_by_key("event_store"),
        name="events",
        adapter_type="postgres",
        telemetry=None,
        protection={
            "timeout": {"seconds": 2},
            "outbox": {
                "methods": ["append"],
                "path": str(tmp_path / "outbox.db"),
                "relay_interval": 0.05,
                "max_relay_interval": 0.2,
            },
        },
    )
    outbox = outbox_of(events)
    assert outbox is not None
    direct = PostgresEventStore(postgres_url, table=table)
    acknowledged: dict[str, list[str]] = {f"s{i}": [] for i in range(3)}
    try:
        await store.start()

        async def append(n: int) -> None:
            stream = f"s{n % 3}"
            event = NewEvent("Tick", {"n": n})
            try:
                result = await events.append(stream, [event])
                assert isinstance(result, AppendResult)
            except OutboxAcceptedError:
                pass
            except PortError:
                return  # refused outright: not acknowledged
            acknowledged[stream].append(event.id)

        for n in range(30):
            await append(n)
        await proxy.cut()  # PostgreSQL is unreachable from here on
        for n in range(30, 60):
            await append(n)
        assert outbox.status().pending > 0, "nothing went to the outbox during the outage"
        await proxy.restore()
        for n in range(60, 90):
            await append(n)

        deadline = asyncio.get_running_loop().time() + BOUND
        while outbox.status().pending:
            assert asyncio.get_running_loop().time() < deadline, (
                f"the outbox never drained: {outbox.status()}"
            )
            await asyncio.sleep(0.05)
        assert sum(map(len, acknowledged.values())) == 90, "every append was acknowledged"
        for stream, ids in acknowledged.items():
            try:
                stored = [e.id for e in await direct.read(stream)]
            except NotFoundError:
                stored = []
            assert stored == ids, f"{stream}: stored {len(stored)} of {len(ids)}, or out of order"
    finally:
        await outbox.aclose()
        await store.aclose()
        await direct.aclose()
        await proxy.aclose()
