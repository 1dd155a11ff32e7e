"""Reading a stream and the global log: ranges, snapshots, round trips, gapless positions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import (
    InvalidInputError,
    NotFoundError,
    WrongExpectedVersionError,
)
from portfolio_core.ports.event_store import (
    Direction,
    EventQuery,
    EventStore,
    EventStoreCapability,
    NewEvent,
)
from portfolio_core.testing._background import in_background
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.contracts.event_store._common import (
    WAIT,
    ev,
)
from portfolio_core.testing.suite import ContractSuite


class ReadClauses(ContractSuite[EventStore]):
    """Reading a stream and the global log: ranges, snapshots, round trips, gapless positions."""

    @clause(
        "event_store.append.size_bytes",
        "max_event_bytes counts UTF-8 bytes of compact JSON data and metadata plus type and "
        "id: an event of exactly the limit is stored, one byte more is refused",
    )
    async def test_event_size_in_utf8_bytes(self, adapter: EventStore) -> None:
        limit = getattr(adapter, "max_event_bytes", None)
        if not isinstance(limit, int) or limit > 4_000_000:
            pytest.skip("the adapter does not expose a max_event_bytes small enough to reach")
        # compact JSON of {"x":"<text>"} is 8 bytes + the text; metadata {} is 2; type "E" 1;
        # id "i" 1: 12 bytes around the text
        room = limit - 12
        fits = "é" * (room // 2) + "a" * (room % 2)
        over = "é" * ((room + 1) // 2) + "a" * ((room + 1) % 2)
        assert (len(fits.encode()), len(over.encode())) == (room, room + 1)
        with pytest.raises(InvalidInputError):
            await adapter.append("s", [NewEvent("E", {"x": over}, id="i")])
        with pytest.raises(NotFoundError):
            await adapter.read("s")
        await adapter.append("s", [NewEvent("E", {"x": fits}, id="i")])
        (got,) = await adapter.read("s")
        assert got.data == {"x": fits}

    @clause("event_store.read.not_found", "reading a stream that does not exist: NotFoundError")
    async def test_read_unknown(self, adapter: EventStore) -> None:
        with pytest.raises(NotFoundError):
            await adapter.read("nope")

    @clause("event_store.read.range", "read honours from_version, limit and direction")
    async def test_read_range(self, adapter: EventStore) -> None:
        await adapter.append("s", [ev(i=n) for n in range(1, 6)])
        await adapter.append("t", [ev()])
        assert [e.version for e in await adapter.read("s", 2, 2)] == [2, 3]
        assert [e.version for e in await adapter.read("s", 6)] == []
        back = await adapter.read("s", 0, None, Direction.BACKWARDS)
        assert [e.version for e in back] == [5, 4, 3, 2, 1]
        back = await adapter.read("s", 3, 2, Direction.BACKWARDS)
        assert [e.version for e in back] == [3, 2]
        assert all(e.stream == "s" for e in back)

    @clause("event_store.read.snapshot", "returned events are snapshots, not live state")
    async def test_read_snapshot(self, adapter: EventStore) -> None:
        await adapter.append("s", [NewEvent("E", {"items": [1]}, {"m": {"k": 1}})])
        first = await adapter.read("s")
        try:
            first[0].data["items"].append(2)
            first[0].metadata["m"]["k"] = 2
            first[0].data["new"] = 1  # type: ignore[index]
        except TypeError:
            pass  # immutable is fine too
        first.append(first[0])
        await adapter.append("s", [ev()])
        assert len(first) == 2
        again = await adapter.read("s")
        assert again[0].data == {"items": [1]}, "mutating a returned event changed the store"
        assert again[0].metadata == {"m": {"k": 1}}

    @clause(
        "event_store.snapshot.all",
        "read_all and query return new lists of snapshots: mutating them changes nothing",
    )
    async def test_read_all_and_query_snapshots(self, adapter: EventStore) -> None:
        await adapter.append("s", [NewEvent("E", {"items": [1]}, {"m": {"k": 1}})])
        calls: list[Any] = [adapter.read_all]
        if supports(adapter, EventStoreCapability.QUERY):
            calls.append(lambda: adapter.query(EventQuery()))
        for call in calls:
            got = await call()
            try:
                got[0].data["items"].append(2)
                got[0].metadata["m"]["k"] = 2
            except TypeError:
                pass  # immutable is fine too
            got.clear()
            again = await call()
            assert len(again) == 1, "clearing a returned list changed what the store returns"
            assert again[0].data == {"items": [1]}, "mutating a returned event changed the store"
            assert again[0].metadata == {"m": {"k": 1}}

    @clause("event_store.read.round_trip", "data, metadata, ids and causation round-trip")
    async def test_round_trip(self, adapter: EventStore) -> None:
        data = {"s": "é✓", "n": 1, "f": 1.5, "b": True, "z": None, "l": [1, "a"], "o": {"k": []}}
        e = NewEvent("Typed", data, {"who": "me"}, id="id-1", correlation_id="c", causation_id="d")
        await adapter.append("s", [e])
        (got,) = await adapter.read("s")
        assert (got.id, got.type, got.stream) == ("id-1", "Typed", "s")
        assert got.data == data
        assert got.metadata == {"who": "me"}
        assert (got.correlation_id, got.causation_id) == ("c", "d")
        assert got.recorded_at.tzinfo is not None

    @clause("event_store.read_all.order", "read_all returns every event in increasing position")
    async def test_read_all(self, adapter: EventStore) -> None:
        await adapter.append("a", [ev(i=1), ev(i=2)])
        await adapter.append("b", [ev(i=3)])
        await adapter.append("a", [ev(i=4)])
        events = await adapter.read_all()
        assert [e.data["i"] for e in events] == [1, 2, 3, 4]
        positions = [e.position for e in events]
        assert positions == sorted(set(positions)), positions
        tail = await adapter.read_all(positions[2])
        assert [e.data["i"] for e in tail] == [3, 4]
        assert [e.data["i"] for e in await adapter.read_all(positions[1], 2)] == [2, 3]

    @clause("event_store.read_all.gapless", "a GAPLESS store numbers positions 1, 2, 3, ...")
    @requires(EventStoreCapability.GAPLESS)
    async def test_gapless(self, adapter: EventStore) -> None:
        await adapter.append("a", [ev(), ev()])
        with pytest.raises(WrongExpectedVersionError):
            await adapter.append("a", [ev()], 0)
        with pytest.raises(InvalidInputError):
            await adapter.append("a", [])
        await adapter.append("b", [ev()])
        assert [e.position for e in await adapter.read_all()] == [1, 2, 3]

    @clause("event_store.read_all.tailing", "a tailing reader never skips an event")
    async def test_tailing_reader(self, adapter: EventStore) -> None:
        seen: list[int] = []
        done = asyncio.Event()

        async def tail() -> None:
            nxt = 1
            for _ in range(10_000):
                batch = await adapter.read_all(nxt)
                seen.extend(e.position for e in batch)
                if batch:
                    nxt = batch[-1].position + 1
                elif done.is_set():
                    return
                await asyncio.sleep(0)

        async def write(w: int) -> None:
            for k in range(6):
                await adapter.append(f"w{w}", [ev(i=k), ev(i=k)])

        async with in_background(tail()) as reader:
            await asyncio.gather(*(write(w) for w in range(4)))
            done.set()
            await asyncio.wait_for(reader, WAIT)
        every = [e.position for e in await adapter.read_all()]
        assert seen == every, "the tailing reader skipped or repeated events"
