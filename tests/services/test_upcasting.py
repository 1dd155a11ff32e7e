"""Upcasting: every adapter's old events read as the current schema version of their type."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.ports.errors import InvalidInputError, UpcastError
from portfolio_core.ports.event_store import Direction, EventQuery, NewEvent
from portfolio_core.services.upcasting import SCHEMA_VERSION, Upcasters, UpcastingEventStore
from tests.support.event_stores import EVENT_STORE_KINDS, make_event_store


def order_upcasters() -> Upcasters:
    """OrderPlaced v1 {"amount": "12.50"} -> v2 {"cents": 1250} -> v3 {"total": {"cents": ...}}."""
    upcasters = Upcasters()

    @upcasters.step("OrderPlaced", 1)
    def cents(data: dict[str, Any]) -> dict[str, Any]:
        return {"cents": round(float(data.pop("amount")) * 100), **data}

    @upcasters.step("OrderPlaced", 2)
    def nested(data: dict[str, Any]) -> dict[str, Any]:
        return {"total": {"cents": data.pop("cents")}, **data}

    return upcasters


@pytest.fixture(params=EVENT_STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_old_events_read_as_current_version(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> None:
    async with make_event_store(kind, request, tmp_path, unique_name) as inner:
        # written by older code: v1 without a version, v2 stamped, and an unrelated type
        await inner.append("order-1", [NewEvent("OrderPlaced", {"amount": "12.50", "sku": "a"})])
        await inner.append(
            "order-2", [NewEvent("OrderPlaced", {"cents": 300}, {SCHEMA_VERSION: 2})]
        )
        await inner.append("order-1", [NewEvent("OrderShipped", {"by": "post"})])
        store = UpcastingEventStore(inner, order_upcasters())
        await store.append("order-3", [NewEvent("OrderPlaced", {"total": {"cents": 5}})])

        want = [
            {"total": {"cents": 1250}, "sku": "a"},
            {"total": {"cents": 300}},
            {"by": "post"},
            {"total": {"cents": 5}},
        ]
        every = await store.read_all()
        assert [dict(e.data) for e in every] == want
        placed = [e for e in every if e.type == "OrderPlaced"]
        assert [e.metadata[SCHEMA_VERSION] for e in placed] == [3, 3, 3]
        assert SCHEMA_VERSION not in every[2].metadata, "a type without steps was stamped"

        assert [dict(e.data) for e in await store.read("order-1")] == [want[0], want[2]]
        backwards = await store.read("order-1", 0, direction=Direction.BACKWARDS)
        assert [dict(e.data) for e in backwards] == [want[2], want[0]]
        queried = await store.query(EventQuery(types=frozenset({"OrderPlaced"})))
        assert [dict(e.data) for e in queried] == [want[0], want[1], want[3]]

        # new events are stored stamped with the current version, old ones untouched
        raw = await inner.read_all()
        assert raw[3].metadata[SCHEMA_VERSION] == 3
        assert dict(raw[0].data) == {"amount": "12.50", "sku": "a"}

        seen: list[dict[str, Any]] = []
        done = asyncio.Event()

        async def handler(event: Any) -> None:
            seen.append(dict(event.data))
            if len(seen) == 4:
                done.set()

        sub = await store.subscribe(handler)
        try:
            await asyncio.wait_for(done.wait(), 10)
        finally:
            await store.unsubscribe(sub)
        assert seen == want


async def test_failing_upcaster_names_event_and_version(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> None:
    async with make_event_store(kind, request, tmp_path, unique_name) as inner:
        event = NewEvent("OrderPlaced", {"amount": "not a number"})
        await inner.append("order-1", [event])
        store = UpcastingEventStore(inner, order_upcasters())
        with pytest.raises(UpcastError) as info:
            await store.read("order-1")
        err = info.value
        assert (err.record, err.record_type, err.schema_version) == (event.id, "OrderPlaced", 1)
        assert event.id in str(err)
        assert "version 1" in str(err)
        assert isinstance(err.__cause__, ValueError)
        # nothing stored changed: the raw event is still there, as written
        assert dict((await inner.read("order-1"))[0].data) == {"amount": "not a number"}


def test_step_returning_a_non_object_is_refused() -> None:
    upcasters = Upcasters()
    upcasters.register("Renamed", 1, lambda data: ["not", "an", "object"])  # type: ignore[arg-type,return-value]
    with pytest.raises(UpcastError) as info:
        upcasters.upcast("e-1", "Renamed", 1, {})
    assert info.value.schema_version == 1
    assert "not a JSON object" in str(info.value)


def test_event_newer_than_known_versions_is_refused() -> None:
    with pytest.raises(UpcastError) as info:
        order_upcasters().upcast("e-9", "OrderPlaced", 4, {})
    assert info.value.schema_version == 4
    assert "newer" in str(info.value)


async def test_append_refuses_a_version_outside_the_known_range() -> None:
    from portfolio_core.adapters.memory.event_store import MemoryEventStore

    inner = MemoryEventStore()
    store = UpcastingEventStore(inner, order_upcasters())
    for bad in (0, 4, "2", True):
        with pytest.raises(InvalidInputError) as info:
            await store.append("s", [NewEvent("OrderPlaced", {}, {SCHEMA_VERSION: bad})])
        assert info.value.field == "metadata"
    assert await inner.read_all() == [], "a refused batch was written"


def test_steps_are_registered_in_order_without_holes() -> None:
    upcasters = Upcasters()
    with pytest.raises(ValueError, match="before"):
        upcasters.register("T", 2, dict)
    upcasters.register("T", 1, dict)
    with pytest.raises(ValueError, match="already"):
        upcasters.register("T", 1, dict)
    assert upcasters.current_version("T") == 2
    assert upcasters.current_version("Other") == 1


def test_wrapper_declares_the_inner_capabilities() -> None:
    from portfolio_core.adapters.memory.event_store import MemoryEventStore
    from portfolio_core.ports.capabilities import capabilities_of

    inner = MemoryEventStore()
    assert capabilities_of(UpcastingEventStore(inner, Upcasters())) == capabilities_of(inner)


async def test_wrapper_counts_through_the_inner_store_or_refuses() -> None:
    from portfolio_core.adapters.memory.event_store import MemoryEventStore
    from portfolio_core.ports.errors import UnsupportedError

    inner = MemoryEventStore()
    store = UpcastingEventStore(inner, order_upcasters())
    await store.append("order-1", [NewEvent("Placed", {"total": n}) for n in range(5)])
    assert await store.count(EventQuery(limit=3)) == 3
    assert await store.count(EventQuery(types=frozenset({"Placed"}))) == 5

    class NoCount:
        capabilities = frozenset({"event_store.query"})

    with pytest.raises(UnsupportedError) as info:
        await UpcastingEventStore(NoCount(), Upcasters()).count(EventQuery())  # type: ignore[arg-type]
    assert info.value.capability == "event_store.count"
