"""Where conditions: the SQL adapters evaluate them in the database (nothing is re-filtered in
Python), and the checks the kit leaves to local adapters (NaN cannot cross the wire)."""

from __future__ import annotations

import pytest

from portfolio_core.adapters._shared.event_store.where import check_where
from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.sql._event_schema import build_query
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.event_store import EventQuery, NewEvent, Where

CONDITIONS = (
    Where("data.order.total", ">=", 7),
    Where("data.order.tier", "in", ["gold", None, True]),
    Where("metadata.src", "exists"),
    Where("data.order.tier", "!=", "x"),
    Where("data.order.tier", "<", "m"),
)


@pytest.mark.parametrize("postgres", [False, True], ids=["sqlite", "postgres"])
def test_where_is_pushed_down_exactly(postgres: bool) -> None:
    query = EventQuery(where=CONDITIONS, limit=5)
    sql, params, exact = build_query("events", "", query, postgres=postgres)
    assert exact, "where conditions were left to a Python re-check"
    assert sql.endswith("LIMIT 5"), "the limit is not applied in the database"
    marker = "#>" if postgres else "json_type"
    assert sql.count(marker) >= len(CONDITIONS)
    placeholders = sql.count("%s" if postgres else "?")
    assert placeholders == len(params), (placeholders, params)


def test_nan_is_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        check_where((Where("data.k", ">", float("nan")),))
    assert info.value.field == "where"


async def test_memory_refuses_nan_and_keeps_the_log() -> None:
    store = MemoryEventStore()
    await store.append("s", [NewEvent("T", {"k": 1})])
    with pytest.raises(InvalidInputError):
        await store.query(EventQuery(where=(Where("data.k", "<", float("inf")),)))
    assert len(await store.read_all()) == 1


async def test_a_subscription_filter_keeps_its_where_conditions() -> None:
    import asyncio

    from portfolio_core.ports.event_store import RecordedEvent

    store = MemoryEventStore()
    await store.append("s", [NewEvent("T", {"o": {"n": n}}) for n in range(6)])
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(event: RecordedEvent) -> None:
        seen.append(event.data["o"]["n"])
        if len(seen) == 2:
            done.set()

    sub = await store.subscribe(handler, filter=EventQuery(where=(Where("data.o.n", ">=", 4),)))
    await asyncio.wait_for(done.wait(), 5)
    await sub.wait_until(6, timeout=5)
    await store.unsubscribe(sub)
    assert seen == [4, 5]
