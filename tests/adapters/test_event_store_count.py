"""``count(query)`` (capability ``event_store.count``): the number of events the query would
return, every filter and the limit included; the SQL adapters count in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.event_store import (
    CountingEventStore,
    EventQuery,
    EventStoreCapability,
    NewEvent,
    Where,
)
from tests.support.event_stores import make_event_store

KINDS = ("memory", "sqlite", "postgres")


async def fill(store: Any) -> None:
    for s in range(4):
        await store.append(
            f"order-{s}",
            [
                NewEvent(
                    "Placed" if i % 3 else "Cancelled",
                    {"n": i, "o": {"tier": "gold" if i % 2 else "basic"}},
                    id=f"00000000-0000-7000-8000-{s:04d}{i:08d}",
                    correlation_id="c1" if s == 1 else None,
                )
                for i in range(10)
            ],
        )


def queries() -> list[EventQuery]:
    an_hour = timedelta(hours=1)
    now = datetime.now(UTC)
    return [
        EventQuery(),
        EventQuery(types=frozenset({"Cancelled"})),
        EventQuery(streams=frozenset({"order-1", "order-3"}), limit=7),
        EventQuery(correlation_id="c1"),
        EventQuery(where=(Where("data.o.tier", "==", "gold"), Where("data.n", ">=", 4))),
        EventQuery(data={"n": 3}),  # re-checked by the reference matcher on SQL
        EventQuery(ids=frozenset({"00000000-0000-7000-8000-000200000005", "nope"})),
        EventQuery(from_position=11, before_position=25, backwards=True, limit=100),
        EventQuery(since=now - an_hour, until=now + an_hour),
        EventQuery(since=now + an_hour),
        EventQuery(limit=0),
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_count_is_the_length_of_the_query(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> None:
    async with make_event_store(kind, request, tmp_path, unique_name) as store:
        assert supports(store, EventStoreCapability.COUNT)
        assert isinstance(store, CountingEventStore)
        assert await store.count(EventQuery()) == 0
        await fill(store)
        counts = []
        for query in queries():
            expected = len(await store.query(query))
            assert await store.count(query) == expected, query
            counts.append(expected)
        assert counts == [40, 16, 7, 10, 12, 4, 1, 14, 40, 0, 0], "the fixture changed"
        with pytest.raises(InvalidInputError):
            await store.count(EventQuery(where=(Where("data.n", "~", 1),)))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_sql_counts_in_the_database(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> None:
    """No event row crosses to Python for an exact query: one row, the count."""
    async with make_event_store(kind, request, tmp_path, unique_name) as store:
        await fill(store)
        fetched: list[list[Any]] = []
        fetch = store._fetch

        async def spying(sql: str, params: Any) -> list[Any]:
            rows = await fetch(sql, params)
            fetched.append(rows)
            return rows

        store._fetch = spying
        assert await store.count(EventQuery(types=frozenset({"Placed"}))) == 24
        assert [len(rows) for rows in fetched] == [1], "the events were read to be counted"
