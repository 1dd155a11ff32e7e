"""Contract suite of the EventStore port (async, stateful), with its state machine.

Every test states one clause of :mod:`portfolio_core.ports.event_store`. The state machine
(:class:`EventStoreMachine`) drives the adapter beside a pure model written from the port's
docstring: plain lists of ``(stream, id, type, data)``, nothing borrowed from an adapter.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PortTimeoutError,
    TenantRequiredError,
    UnavailableError,
    UnsupportedError,
    WrongExpectedVersionError,
)
from portfolio_core.ports.event_store import (
    MAX_WHERE_IN,
    Direction,
    EventQuery,
    EventStore,
    EventStoreCapability,
    NewEvent,
    OnHandlerError,
    RecordedEvent,
    StreamState,
    Where,
)
from portfolio_core.ports.tenant import tenant_scope
from portfolio_core.ports.values import MAX_VALUE_DEPTH
from portfolio_core.testing.clauses import clause, requires, requires_absent
from portfolio_core.testing.clock import FakeClock, FakeWallClock
from portfolio_core.testing.concurrency import one_winner, run_concurrently
from portfolio_core.testing.contracts.cache import with_options
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.loop import LoopRunner, accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite

__all__ = ["EventStoreContract", "EventStoreMachine"]

WAIT = 10.0
#: the most times a subscription with on_error=retry may run the handler on one event
MAX_HANDLER_ATTEMPTS = 10


_STRING_CASES = [
    ("data_value", "data"),
    ("data_later_value", "data"),
    ("data_key", "data"),
    ("data_nested", "data"),
    ("metadata_value", "metadata"),
    ("metadata_key", "metadata"),
    ("type", "type"),
    ("id", "id"),
    ("correlation_id", "correlation_id"),
    ("causation_id", "causation_id"),
    ("stream", "stream"),
]
"""Where a refused string can hide in an append, and the field the error must name."""


def ev(type_: str = "E", i: int = 0, **kw: Any) -> NewEvent:
    return NewEvent(type_, {"i": i, **kw})


def _ids(events: list[RecordedEvent]) -> list[str]:
    return [e.id for e in events]


class EventStoreContract(ContractSuite[EventStore]):
    """The promises of :class:`~portfolio_core.ports.EventStore` (docs/ports/event_store.md)."""

    port_key = "event_store"
    capability_names = frozenset(c.value for c in EventStoreCapability)

    async def put_probe(self, adapter: EventStore) -> str:
        await adapter.append("kit-probe", [NewEvent("Probe")])
        return "kit-probe"

    async def has_probe(self, adapter: EventStore, probe: str) -> bool:
        return bool(await adapter.read_all())

    # -- appending ---------------------------------------------------------------------

    @clause("event_store.append.result", "append returns the new version and batch positions")
    async def test_append_result(self, adapter: EventStore) -> None:
        r1 = await adapter.append("s", [ev(i=1), ev(i=2)], StreamState.NO_STREAM)
        assert r1.version == 2, r1
        assert len(r1.positions) == 2, r1
        r2 = await adapter.append("s", [ev(i=3)], 2)
        assert r2.version == 3, r2
        assert r1.positions[0] < r1.positions[1] < r2.positions[0], (r1, r2)
        events = await adapter.read("s")
        assert [e.version for e in events] == [1, 2, 3]
        assert [e.position for e in events] == [*r1.positions, *r2.positions]
        assert [e.data["i"] for e in events] == [1, 2, 3]

    @clause(
        "event_store.append.expected_version",
        "an expected version that does not match raises WrongExpectedVersionError, writes nothing",
    )
    @pytest.mark.parametrize(
        ("setup", "expected"),
        [
            (1, StreamState.NO_STREAM),
            (0, StreamState.STREAM_EXISTS),
            (2, 1),
            (2, 3),
            (0, 1),
        ],
    )
    async def test_wrong_expected_version(
        self, adapter: EventStore, setup: int, expected: Any
    ) -> None:
        if setup:
            await adapter.append("s", [ev(i=n) for n in range(setup)])
        await adapter.append("other", [ev()])
        before = await adapter.read_all()
        with pytest.raises(WrongExpectedVersionError) as info:
            await adapter.append("s", [ev(i=99)], expected)
        assert info.value.actual == setup, f"actual reported {info.value.actual}, is {setup}"
        assert _ids(await adapter.read_all()) == _ids(before), "a refused append wrote events"

    @clause("event_store.append.expected_ok", "matching expected versions (int and states) append")
    async def test_expected_version_ok(self, adapter: EventStore) -> None:
        await adapter.append("s", [ev()], StreamState.NO_STREAM)
        await adapter.append("s", [ev()], StreamState.STREAM_EXISTS)
        await adapter.append("s", [ev()], 2)
        await adapter.append("s", [ev()], StreamState.ANY)
        assert len(await adapter.read("s")) == 4

    @clause("event_store.append.idempotent", "retrying an exact batch does not duplicate it")
    async def test_idempotent_retry(self, adapter: EventStore) -> None:
        batch = [ev(i=1), ev(i=2)]
        first = await adapter.append("s", batch, StreamState.NO_STREAM)
        again = await adapter.append("s", batch, StreamState.NO_STREAM)
        assert again.version == first.version
        assert again.positions == first.positions
        again_any = await adapter.append("s", batch)
        assert again_any.positions == first.positions
        assert len(await adapter.read("s")) == 2, "an idempotent retry duplicated events"
        assert len(await adapter.read_all()) == 2

    @clause(
        "event_store.append.idempotent_not_tail",
        "a retried batch that is no longer the stream's last append returns the original "
        "result and writes nothing (int, ANY and STREAM_EXISTS alike)",
    )
    async def test_idempotent_retry_not_at_tail(self, adapter: EventStore) -> None:
        await adapter.append("s", [ev(i=0)])
        batch = [ev(i=1), ev(i=2)]
        first = await adapter.append("s", batch, 1)
        await adapter.append("s", [ev(i=3)], 3)
        await adapter.append("other", [ev(i=4)])
        before = _ids(await adapter.read_all())
        for expected in (1, StreamState.ANY, StreamState.STREAM_EXISTS):
            again = await adapter.append("s", batch, expected)
            assert (again.version, again.positions) == (first.version, first.positions), (
                f"retrying with expected_version={expected!r} gave {again}, not {first}"
            )
        assert _ids(await adapter.read_all()) == before, "a retry of an older batch wrote events"
        for wrong in (0, 2, StreamState.NO_STREAM):
            with pytest.raises(ConflictError):
                await adapter.append("s", batch, wrong)
        opening = [ev(i=5)]
        await adapter.append("fresh", opening, StreamState.NO_STREAM)
        with pytest.raises(ConflictError):
            # the original append found no stream: STREAM_EXISTS cannot be its retry
            await adapter.append("fresh", opening, StreamState.STREAM_EXISTS)
        assert _ids(await adapter.read_all()) == [*before, opening[0].id]

    @clause("event_store.append.id_conflict", "an id stored elsewhere raises ConflictError")
    async def test_id_reused_elsewhere(self, adapter: EventStore) -> None:
        e = ev()
        await adapter.append("a", [e])
        with pytest.raises(ConflictError):
            await adapter.append("b", [ev(), e])
        with pytest.raises(NotFoundError):
            await adapter.read("b")
        assert len(await adapter.read_all()) == 1, "a conflicting batch was partly written"

    @clause("event_store.append.invalid", "bad input raises InvalidInputError, writes nothing")
    @pytest.mark.parametrize(
        "case",
        [
            "empty_batch",
            "empty_stream",
            "not_json",
            "nan",
            "oversized",
            "dup_ids",
            # what JSON would silently convert is refused, as a Cache refuses it
            "tuple",
            "int_key",
            "too_deep",
        ],
    )
    async def test_invalid_input(self, adapter: EventStore, case: str) -> None:
        await adapter.append("s", [ev()])
        limit = int(getattr(adapter, "max_event_bytes", 1_048_576))
        good = ev()
        stream = "s"
        batch: list[NewEvent]
        if case == "empty_batch":
            batch = []
        elif case == "empty_stream":
            stream, batch = "", [good]
        elif case == "not_json":
            batch = [good, NewEvent("E", {"x": object()})]
        elif case == "nan":
            batch = [good, NewEvent("E", {"x": float("nan")})]
        elif case == "oversized":
            batch = [good, NewEvent("E", {"x": "y" * (limit + 1)})]
        elif case == "tuple":
            batch = [good, NewEvent("E", {"x": [1, (2, 3)]})]
        elif case == "int_key":
            batch = [good, NewEvent("E", metadata={"m": {1: "one"}})]
        elif case == "too_deep":
            deep: Any = 1
            for _ in range(MAX_VALUE_DEPTH):
                deep = [deep]
            batch = [good, NewEvent("E", {"x": deep})]
        else:
            batch = [good, good]
        with pytest.raises(InvalidInputError):
            await adapter.append(stream, batch)
        assert len(await adapter.read_all()) == 1, f"{case}: invalid batch wrote events"

    @clause(
        "event_store.args.invalid",
        "malformed arguments raise InvalidInputError and write nothing: a batch that is not a "
        "sequence of NewEvent, an empty type, a negative or boolean expected version, a "
        "negative limit or version",
    )
    @pytest.mark.parametrize(
        "case",
        [
            "single_event",
            "not_an_event",
            "empty_type",
            "negative_expected",
            "bool_expected",
            "negative_limit",
            "negative_read_all_limit",
            "negative_version",
        ],
    )
    async def test_malformed_arguments(self, adapter: EventStore, case: str) -> None:
        await adapter.append("s", [ev()])
        store: Any = adapter  # the calls below break the port's types on purpose
        calls: dict[str, Any] = {
            "single_event": lambda: store.append("s", ev()),
            "not_an_event": lambda: store.append("s", [ev(), {"type": "E", "data": {}}]),
            "empty_type": lambda: adapter.append("s", [ev(), NewEvent("", {})]),
            "negative_expected": lambda: adapter.append("s", [ev()], -1),
            "bool_expected": lambda: adapter.append("s", [ev()], True),
            "negative_limit": lambda: adapter.read("s", 1, -1),
            "negative_read_all_limit": lambda: adapter.read_all(1, -1),
            "negative_version": lambda: adapter.read("s", -1),
        }
        with pytest.raises(InvalidInputError):
            await calls[case]()
        assert len(await adapter.read_all()) == 1, f"{case}: a refused call wrote events"

    @clause(
        "event_store.append.rejects_nul",
        "a string containing U+0000 anywhere in an event raises InvalidInputError naming the "
        "field, writes nothing",
    )
    @pytest.mark.parametrize(("case", "field"), _STRING_CASES)
    async def test_rejects_nul(self, adapter: EventStore, case: str, field: str) -> None:
        await self._refused_string(adapter, case, field, "a\x00b")

    @clause(
        "event_store.append.rejects_surrogates",
        "a string holding a lone surrogate (not Unicode text) anywhere in an event raises "
        "InvalidInputError naming the field, writes nothing",
    )
    @pytest.mark.parametrize(("case", "field"), _STRING_CASES)
    async def test_rejects_surrogates(self, adapter: EventStore, case: str, field: str) -> None:
        await self._refused_string(adapter, case, field, "a\udc80b")

    @staticmethod
    async def _refused_string(adapter: EventStore, case: str, field: str, nul: str) -> None:
        """Append a batch whose second event holds ``nul`` at ``case``: refused, naming
        ``field``, nothing written."""
        await adapter.append("s", [ev()])
        before = await adapter.read_all()
        stream = "s"
        bad: NewEvent
        if case == "data_value":
            bad = NewEvent("E", {"x": nul})
        elif case == "data_later_value":
            bad = NewEvent("E", {"a": {"clean": 1}, "b": "clean", "x": nul})
        elif case == "data_key":
            bad = NewEvent("E", {nul: 1})
        elif case == "data_nested":
            bad = NewEvent("E", {"x": [1, {"y": ["ok", nul]}]})
        elif case == "metadata_value":
            bad = NewEvent("E", metadata={"m": nul})
        elif case == "metadata_key":
            bad = NewEvent("E", metadata={nul: "v"})
        elif case == "type":
            bad = NewEvent(nul)
        elif case == "id":
            bad = NewEvent("E", id=nul)
        elif case == "correlation_id":
            bad = NewEvent("E", correlation_id=nul)
        elif case == "causation_id":
            bad = NewEvent("E", causation_id=nul)
        else:
            stream, bad = nul, ev()
        with pytest.raises(InvalidInputError) as info:
            await adapter.append(stream, [ev(i=1), bad])
        assert info.value.field == field, f"{case}: error names {info.value.field!r}, not {field!r}"
        assert _ids(await adapter.read_all()) == _ids(before), f"{case}: refused batch wrote events"

    @clause("event_store.append.atomic", "of N concurrent appends at one version, one wins")
    async def test_concurrent_one_winner(self, adapter: EventStore) -> None:
        await adapter.append("s", [ev()])
        results = await run_concurrently(8, lambda i: adapter.append("s", [ev(i=i), ev(i=i)], 1))
        one_winner(results, WrongExpectedVersionError)
        events = await adapter.read("s")
        assert [e.version for e in events] == [1, 2, 3], "batches interleaved or duplicated"
        assert events[1].data == events[2].data, "the winning batch was split"

    @clause("event_store.append.race", "racing writers with retries lose and duplicate nothing")
    async def test_writers_race(self, adapter: EventStore) -> None:
        per_writer = 5

        async def writer(w: int) -> int:
            done = 0
            for _ in range(200):
                if done == per_writer:
                    break
                try:
                    current = len(await adapter.read("s"))
                except NotFoundError:
                    current = 0
                try:
                    await adapter.append("s", [ev(i=w * 100 + done)], current)
                    done += 1
                except WrongExpectedVersionError:
                    await asyncio.sleep(0)
            return done

        results = await run_concurrently(8, writer)
        assert all(r == per_writer for r in results), results
        events = await adapter.read("s")
        assert [e.version for e in events] == list(range(1, 8 * per_writer + 1))
        got = sorted(e.data["i"] for e in events)
        assert got == sorted(w * 100 + k for w in range(8) for k in range(per_writer))

    # -- reading -------------------------------------------------------------------------

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

        reader = asyncio.ensure_future(tail())
        await asyncio.gather(*(write(w) for w in range(4)))
        done.set()
        await asyncio.wait_for(reader, WAIT)
        every = [e.position for e in await adapter.read_all()]
        assert seen == every, "the tailing reader skipped or repeated events"

    # -- query ---------------------------------------------------------------------------

    @clause("event_store.query.filters", "query matches type, stream, correlation, JSON fields")
    @requires(EventStoreCapability.QUERY)
    async def test_query(self, adapter: EventStore) -> None:
        await adapter.append(
            "a",
            [
                NewEvent("Paid", {"amount": 5, "ok": True}, {"region": "eu"}, correlation_id="c1"),
                NewEvent("Paid", {"amount": 7, "ok": 1}, {"region": "us"}),
                NewEvent("Sent", {"amount": 5}, correlation_id="c1"),
            ],
        )
        await adapter.append("b", [NewEvent("Paid", {"amount": 5, "tags": ["x"]})])

        async def q(**kw: Any) -> list[tuple[str, int]]:
            return [(e.stream, e.version) for e in await adapter.query(EventQuery(**kw))]

        assert await q(types=frozenset({"Paid"})) == [("a", 1), ("a", 2), ("b", 1)]
        assert await q(streams=frozenset({"b"})) == [("b", 1)]
        assert await q(correlation_id="c1") == [("a", 1), ("a", 3)]
        assert await q(data={"amount": 5}) == [("a", 1), ("a", 3), ("b", 1)]
        assert await q(data={"ok": True}) == [("a", 1)], "true must not equal 1"
        assert await q(data={"ok": 1}) == [("a", 2)]
        assert await q(data={"tags": ["x"]}) == [("b", 1)]
        assert await q(metadata={"region": "eu"}) == [("a", 1)]
        assert await q(types=frozenset({"Paid"}), data={"amount": 5}, limit=1) == [("a", 1)]
        assert await q(data={"amount": 5}, from_position=3) == [("a", 3), ("b", 1)]
        assert await q(data={"missing": None}) == []

    @clause(
        "event_store.query.where",
        "where conditions on nested JSON paths: exists, ==, !=, ranges, in, typed like JSON",
    )
    @requires(EventStoreCapability.QUERY)
    async def test_query_where(self, adapter: EventStore) -> None:
        rows: list[dict[str, Any]] = [
            {"order": {"total": 10, "tier": "gold", "paid": True}, "tags": ["a"]},
            {"order": {"total": 25.5, "tier": "silver", "paid": False}},
            {"order": {"total": 7, "tier": "Gold", "note": None}},
            {"order": {"total": "12", "tier": "gölд"}},
            {"order": {"total": 1, "paid": 1}},
            {"other": {"total": 10}},
        ]
        await adapter.append("s", [NewEvent("T", d, {"src": {"n": i}}) for i, d in enumerate(rows)])

        async def q(*conditions: Where) -> list[int]:
            found = await adapter.query(EventQuery(where=conditions))
            return [e.version for e in found]

        W = Where
        assert await q(W("data.order.total", "exists")) == [1, 2, 3, 4, 5]
        assert await q(W("data.order.note", "exists")) == [3], "a null value exists"
        assert await q(W("data.order.total", "==", 10)) == [1]
        assert await q(W("data.order.total", "==", 10.0)) == [1], "10 equals 10.0"
        assert await q(W("data.order.total", "==", "12")) == [4], "a str equals only a str"
        assert await q(W("data.order.paid", "==", True)) == [1], "true equals only true"
        assert await q(W("data.order.paid", "==", 1)) == [5], "1 does not equal true"
        assert await q(W("data.order.note", "==", None)) == [3]
        assert await q(W("data.order.tier", "!=", "gold")) == [2, 3, 4], "!= needs the path"
        assert await q(W("data.order.total", ">", 7)) == [1, 2], "numbers only, not '12'"
        assert await q(W("data.order.total", ">=", 7), W("data.order.total", "<", 25.5)) == [
            1,
            3,
        ]
        assert await q(W("data.order.total", "<=", 1)) == [5]
        assert await q(W("data.order.tier", "<", "gold")) == [3], "code point order: G < g"
        assert await q(W("data.order.tier", ">", "gold")) == [2, 4]
        assert await q(W("data.order.tier", "in", ["gold", "Gold", "bronze"])) == [1, 3]
        assert await q(W("data.order.total", "in", [7, "12", True])) == [3, 4]
        assert await q(W("metadata.src.n", ">=", 4)) == [5, 6]
        assert await q(W("data.tags", "exists"), W("data.order.paid", "==", True)) == [1]
        assert await q(W("data.order.total.deeper", "exists")) == [], "a scalar has no keys"
        found = await adapter.query(
            EventQuery(where=(W("data.order.total", "exists"),), from_position=1, limit=2)
        )
        assert [e.version for e in found] == [1, 2], "limit applies after the conditions"

    @clause(
        "event_store.query.ids_and_pages",
        "query by event ids; backwards in descending position order; pages by position",
    )
    @requires(EventStoreCapability.QUERY)
    async def test_query_ids_and_pages(self, adapter: EventStore) -> None:
        batch = [NewEvent("T" if i % 3 else "U", {"i": i}) for i in range(1, 11)]
        await adapter.append("a", batch[:6])
        await adapter.append("b", batch[6:])
        every = await adapter.read_all()
        positions = [e.position for e in every]

        async def q(**kw: Any) -> list[int]:
            return [e.data["i"] for e in await adapter.query(EventQuery(**kw))]

        assert await q(ids=frozenset({batch[8].id, batch[1].id})) == [2, 9], "get by id"
        assert await q(ids=frozenset({"no-such-id"})) == []
        assert await q(backwards=True) == list(range(10, 0, -1))
        assert await q(backwards=True, limit=3) == [10, 9, 8], "limit keeps the last ones"
        assert await q(types=frozenset({"U"}), backwards=True) == [9, 6, 3]
        assert await q(before_position=positions[4]) == [1, 2, 3, 4]
        assert await q(from_position=positions[2], before_position=positions[5]) == [3, 4, 5]
        # paging backwards, then forwards, three at a time: every event once, in order
        seen: list[int] = []
        before: int | None = None
        while True:
            page = await adapter.query(EventQuery(backwards=True, limit=3, before_position=before))
            if not page:
                break
            seen += [e.data["i"] for e in page]
            before = page[-1].position
        assert seen == list(range(10, 0, -1)), "backward pages skipped or repeated events"
        seen, start = [], 1
        while page := await adapter.query(EventQuery(limit=3, from_position=start)):
            seen += [e.data["i"] for e in page]
            start = page[-1].position + 1
        assert seen == list(range(1, 11)), "forward pages skipped or repeated events"

    @clause(
        "event_store.subscribe.forwards_only",
        "a subscription filter that is backwards or bounded by before_position is refused",
    )
    @requires(EventStoreCapability.SUBSCRIBE)
    @pytest.mark.parametrize("kw", [{"backwards": True}, {"before_position": 5}])
    async def test_subscribe_forwards_only(self, adapter: EventStore, kw: dict[str, Any]) -> None:
        async def handler(event: RecordedEvent) -> None:
            raise AssertionError("nothing may be delivered")

        with pytest.raises(InvalidInputError):
            await adapter.subscribe(handler, filter=EventQuery(**kw))

    @clause("event_store.query.where_invalid", "a malformed where condition is refused")
    @requires(EventStoreCapability.QUERY)
    @pytest.mark.parametrize(
        "condition",
        [
            Where("order.total", "exists"),
            Where("data", "exists"),
            Where("data.a b", "exists"),
            Where("data." + ".".join(["k"] * 17), "exists"),
            Where("data.k", "like", "x"),
            Where("data.k", "exists", 1),
            Where("data.k", "==", {"a": 1}),
            Where("data.k", "==", [1]),
            Where("data.k", "<", True),
            Where("data.k", "<", None),
            Where("data.k", "in", []),
            Where("data.k", "in", [[1]]),
            Where("data.k", "in", list(range(MAX_WHERE_IN + 1))),
            Where("data.k", "==", "a\x00"),
        ],
        ids=lambda c: f"{c.path[:12]}{c.op}{str(c.value)[:8]}",
    )
    async def test_query_where_invalid(self, adapter: EventStore, condition: Where) -> None:
        with pytest.raises(InvalidInputError) as info:
            await adapter.query(EventQuery(where=(condition,)))
        assert info.value.field == "where", f"the error names {info.value.field!r}"

    @clause(
        "event_store.query.and",
        "query filters combine with AND: an event must match every filter given",
    )
    @requires(EventStoreCapability.QUERY)
    async def test_query_filters_combine_with_and(self, adapter: EventStore) -> None:
        await adapter.append(
            "a",
            [
                NewEvent("Paid", {"amount": 5}, {"region": "eu"}, correlation_id="c1"),
                NewEvent("Paid", {"amount": 7}, {"region": "eu"}, correlation_id="c1"),
                NewEvent("Sent", {"amount": 5}, {"region": "eu"}, correlation_id="c1"),
                NewEvent("Paid", {"amount": 5}, {"region": "us"}, correlation_id="c1"),
                NewEvent("Paid", {"amount": 5}, {"region": "eu"}, correlation_id="c2"),
            ],
        )
        await adapter.append("b", [NewEvent("Paid", {"amount": 5}, {"region": "eu"})])

        async def q(**kw: Any) -> list[tuple[str, int]]:
            return [(e.stream, e.version) for e in await adapter.query(EventQuery(**kw))]

        paid = frozenset({"Paid"})
        assert await q(types=paid, data={"amount": 5}) == [("a", 1), ("a", 4), ("a", 5), ("b", 1)]
        assert await q(types=paid, data={"amount": 5}, metadata={"region": "eu"}) == [
            ("a", 1),
            ("a", 5),
            ("b", 1),
        ]
        assert await q(
            types=paid, data={"amount": 5}, metadata={"region": "eu"}, correlation_id="c1"
        ) == [("a", 1)]
        assert await q(streams=frozenset({"b"}), correlation_id="c1") == []
        assert await q(data={"amount": 5, "missing": 1}) == [], "data fields combine with AND"

    @clause(
        "event_store.query.numbers",
        "numeric data fields compare as JSON numbers: 1 equals 1.0, true equals neither",
    )
    @requires(EventStoreCapability.QUERY)
    async def test_query_numeric_equality(self, adapter: EventStore) -> None:
        await adapter.append(
            "a",
            [
                NewEvent("E", {"n": 1}),
                NewEvent("E", {"n": 1.0}),
                NewEvent("E", {"n": True}),
                NewEvent("E", {"n": "1"}),
                NewEvent("E", {"n": 2}),
            ],
        )

        async def versions(value: Any) -> list[int]:
            return [e.version for e in await adapter.query(EventQuery(data={"n": value}))]

        assert await versions(1) == [1, 2], "1 must match 1 and 1.0, not true or '1'"
        assert await versions(1.0) == [1, 2], "1.0 must match 1 and 1.0"
        assert await versions(True) == [3]
        assert await versions("1") == [4]
        await adapter.append("b", [NewEvent("E", {"l": [1, "a"]}), NewEvent("E", {"l": [1, "b"]})])
        found = await adapter.query(EventQuery(data={"l": [1.0, "b"]}))
        assert [(e.stream, e.version) for e in found] == [("b", 2)], (
            "lists compare element by element as JSON values"
        )

    @clause("event_store.query.rejects_nul", "a query filter string with U+0000 is refused")
    @requires(EventStoreCapability.QUERY)
    @pytest.mark.parametrize(
        ("kw", "field"),
        [
            ({"types": frozenset({"a\x00"})}, "types"),
            ({"streams": frozenset({"a\x00"})}, "streams"),
            ({"correlation_id": "a\x00"}, "correlation_id"),
            ({"data": {"k": "a\x00"}}, "data"),
            ({"metadata": {"a\x00": 1}}, "metadata"),
        ],
    )
    async def test_query_rejects_nul(
        self, adapter: EventStore, kw: dict[str, Any], field: str
    ) -> None:
        await adapter.append("a", [ev()])
        with pytest.raises(InvalidInputError) as info:
            await adapter.query(EventQuery(**kw))
        assert info.value.field == field, f"error names {info.value.field!r}, not {field!r}"

    @clause(
        "event_store.query.rejects_surrogates",
        "a query filter string holding a lone surrogate is refused",
    )
    @requires(EventStoreCapability.QUERY)
    @pytest.mark.parametrize(
        ("kw", "field"),
        [
            ({"types": frozenset({"a\udc80"})}, "types"),
            ({"streams": frozenset({"a\udc80"})}, "streams"),
            ({"correlation_id": "a\udc80"}, "correlation_id"),
            ({"data": {"k": "a\udc80"}}, "data"),
            ({"metadata": {"a\udc80": 1}}, "metadata"),
        ],
    )
    async def test_query_rejects_surrogates(
        self, adapter: EventStore, kw: dict[str, Any], field: str
    ) -> None:
        await adapter.append("a", [ev()])
        with pytest.raises(InvalidInputError) as info:
            await adapter.query(EventQuery(**kw))
        assert info.value.field == field, f"error names {info.value.field!r}, not {field!r}"

    @clause("event_store.query.time", "since is inclusive and until exclusive on recorded_at")
    @requires(EventStoreCapability.QUERY)
    async def test_query_time(self, adapter: EventStore) -> None:
        await adapter.append("a", [ev()])
        (e,) = await adapter.read_all()
        at = e.recorded_at
        assert await adapter.query(EventQuery(since=at - timedelta(seconds=1)))
        assert await adapter.query(EventQuery(until=at + timedelta(seconds=1)))
        assert not await adapter.query(EventQuery(until=at - timedelta(seconds=1)))
        assert not await adapter.query(EventQuery(since=at + timedelta(seconds=1)))
        assert abs(at - datetime.now(UTC)) < timedelta(minutes=5), "recorded_at is not now-ish"

    @clause(
        "event_store.recorded_at.ordered",
        "recorded_at never decreases along positions, so a time range is a run of positions",
    )
    async def test_recorded_at_never_decreases(self, adapter: EventStore) -> None:
        for n in (1, 3, 1, 2, 1):
            await adapter.append("a", [ev(i=k) for k in range(n)])
            await asyncio.sleep(0.002)
        times = [e.recorded_at for e in await adapter.read_all()]
        assert times == sorted(times), f"recorded_at went backwards along positions: {times}"

    @clause(
        "event_store.recorded_at.wall_clock",
        "recorded_at is the store's wall clock at commit; when that clock steps back, "
        "recorded_at holds at the previous event's time instead of decreasing",
    )
    async def test_recorded_at_follows_the_wall_clock(
        self, adapter: EventStore, wall_clock: FakeWallClock
    ) -> None:
        def at(e: RecordedEvent) -> float:
            return e.recorded_at.timestamp()

        await adapter.append("a", [ev(i=1), ev(i=2)])
        first = await adapter.read("a")
        assert all(abs(at(e) - wall_clock.now) < 0.001 for e in first), (
            f"recorded_at {[e.recorded_at for e in first]} is not the store's clock "
            f"({datetime.fromtimestamp(wall_clock.now, UTC)})"
        )
        wall_clock.advance(-30)
        await adapter.append("a", [ev(i=3)])
        stepped_back = (await adapter.read("a"))[-1]
        assert at(stepped_back) >= at(first[-1]), "recorded_at decreased when the clock went back"
        assert at(stepped_back) - at(first[-1]) < 0.001, (
            "with the clock stepped back, recorded_at should stay at the previous event's time"
        )
        wall_clock.advance(90)
        await adapter.append("a", [ev(i=4)])
        later = (await adapter.read("a"))[-1]
        assert abs(at(later) - wall_clock.now) < 0.001, "recorded_at did not follow the clock"

    @clause(
        "event_store.query.time_controlled",
        "with the wall clock controlled, since (inclusive) and until (exclusive) select "
        "exactly the events recorded in [since, until)",
    )
    @requires(EventStoreCapability.QUERY)
    async def test_query_time_with_controlled_clock(
        self, adapter: EventStore, wall_clock: FakeWallClock
    ) -> None:
        start = datetime.fromtimestamp(round(wall_clock.now), UTC)
        wall_clock.advance(round(wall_clock.now) - wall_clock.now)  # whole seconds
        for k in range(4):
            await adapter.append("a", [ev(i=k)])
            wall_clock.advance(10)

        async def q(since: int | None, until: int | None) -> list[int]:
            query = EventQuery(
                since=None if since is None else start + timedelta(seconds=since),
                until=None if until is None else start + timedelta(seconds=until),
            )
            return [e.data["i"] for e in await adapter.query(query)]

        assert await q(10, 30) == [1, 2], "since is inclusive, until exclusive"
        assert await q(0, 10) == [0]
        assert await q(5, 15) == [1]
        assert await q(30, None) == [3]
        assert await q(None, 0) == []
        assert await q(31, None) == []

    @clause(
        "event_store.query.time_range",
        "every since/until pair selects exactly the events recorded in [since, until)",
    )
    @requires(EventStoreCapability.QUERY)
    async def test_query_time_range(self, adapter: EventStore) -> None:
        for n in (2, 1, 3, 1, 1, 2):  # events of one batch share their commit time
            await adapter.append("a", [ev(i=k) for k in range(n)])
            await asyncio.sleep(0.002)
        events = await adapter.read_all()
        tick = timedelta(microseconds=1)
        stamps = sorted({e.recorded_at for e in events})
        bounds = [stamps[0] - tick, *stamps, *(t + tick for t in stamps)]
        for since in [None, *bounds]:
            for until in [None, *bounds]:
                want = [
                    e.position
                    for e in events
                    if (since is None or e.recorded_at >= since)
                    and (until is None or e.recorded_at < until)
                ]
                got = [
                    e.position for e in await adapter.query(EventQuery(since=since, until=until))
                ]
                assert got == want, f"since={since} until={until}: got {got}, want {want}"

    @clause("event_store.query.unsupported", "without QUERY, query raises UnsupportedError")
    @requires_absent(EventStoreCapability.QUERY)
    async def test_query_unsupported(self, adapter: EventStore) -> None:
        with pytest.raises(UnsupportedError):
            await adapter.query(EventQuery())

    # -- subscriptions ---------------------------------------------------------------------

    @clause("event_store.subscribe.catch_up_live", "catch-up then live, in position order")
    @requires(EventStoreCapability.SUBSCRIBE)
    async def test_subscribe(self, adapter: EventStore) -> None:
        await adapter.append("a", [ev(i=1), ev(i=2)])
        got: list[int] = []

        async def handler(e: RecordedEvent) -> None:
            got.append(e.data["i"])

        sub = await adapter.subscribe(handler)
        other = await adapter.subscribe(handler, from_position=10_000)
        assert isinstance(sub.id, str), f"subscription id {sub.id!r} is not a string"
        assert sub.id, "a subscription's id is empty"
        assert sub.id != other.id, "two subscriptions share an id"
        await adapter.unsubscribe(other)
        await sub.wait_until(2, WAIT)
        r = await adapter.append("b", [ev(i=3)])
        await adapter.append("a", [ev(i=4)])
        await sub.wait_until(r.positions[0] + 1, WAIT)
        assert got == [1, 2, 3, 4]
        assert sub.checkpoint == r.positions[0] + 1
        await adapter.unsubscribe(sub)
        await adapter.unsubscribe(sub)  # idempotent
        await adapter.append("a", [ev(i=5)])
        await asyncio.sleep(0.05)
        assert got == [1, 2, 3, 4], "an unsubscribed handler still received events"

    @clause("event_store.subscribe.filters", "stream, from_position and filter narrow delivery")
    @requires(EventStoreCapability.SUBSCRIBE)
    async def test_subscribe_filters(self, adapter: EventStore) -> None:
        await adapter.append("a", [ev("X", 1), ev("Y", 2)])
        await adapter.append("b", [ev("X", 3)])
        await adapter.append("a", [ev("X", 4)])
        last = (await adapter.read_all())[-1].position
        one: list[int] = []
        typed: list[int] = []
        late: list[int] = []

        def collect(into: list[int]) -> Any:
            async def handler(e: RecordedEvent) -> None:
                into.append(e.data["i"])

            return handler

        s1 = await adapter.subscribe(collect(one), stream="a")
        s2 = await adapter.subscribe(collect(typed), filter=EventQuery(types=frozenset({"X"})))
        s3 = await adapter.subscribe(collect(late), from_position=3)
        none: list[int] = []
        s4 = await adapter.subscribe(
            collect(none), stream="a", filter=EventQuery(streams=frozenset({"b"}))
        )
        for s in (s1, s2, s3):
            await s.wait_until(last, WAIT)
        assert one == [1, 2, 4]
        assert typed == [1, 3, 4]
        assert late == [3, 4]
        await asyncio.sleep(0.05)
        assert none == [], "a stream outside the filter's streams still delivered events"
        assert s4.error is None, f"a disjoint stream and filter failed: {s4.error!r}"
        for s in (s1, s2, s3, s4):
            await adapter.unsubscribe(s)

    @clause("event_store.subscribe.resume", "resuming from checkpoint + 1 loses nothing")
    @requires(EventStoreCapability.SUBSCRIBE)
    async def test_subscribe_resume(self, adapter: EventStore) -> None:
        got: list[int] = []

        async def handler(e: RecordedEvent) -> None:
            got.append(e.position)

        sub = await adapter.subscribe(handler)
        r = await adapter.append("a", [ev(), ev()])
        await sub.wait_until(r.positions[-1], WAIT)
        checkpoint = sub.checkpoint
        await adapter.unsubscribe(sub)
        r2 = await adapter.append("a", [ev(), ev()])
        sub = await adapter.subscribe(handler, from_position=checkpoint + 1)
        await sub.wait_until(r2.positions[-1], WAIT)
        await adapter.unsubscribe(sub)
        assert got == [*r.positions, *r2.positions]

    @clause("event_store.subscribe.on_error", "stop keeps the error, skip moves on, retry retries")
    @requires(EventStoreCapability.SUBSCRIBE)
    @pytest.mark.parametrize("policy", list(OnHandlerError))
    async def test_handler_errors(self, adapter: EventStore, policy: OnHandlerError) -> None:
        await adapter.append("a", [ev(i=1), ev(i=2), ev(i=3)])
        calls: list[int] = []

        async def handler(e: RecordedEvent) -> None:
            calls.append(e.data["i"])
            if e.data["i"] == 2 and calls.count(2) < 2:
                raise RuntimeError("boom")

        sub = await adapter.subscribe(handler, on_error=policy)
        if policy is OnHandlerError.STOP:
            with pytest.raises(RuntimeError):
                await sub.wait_until(3, WAIT)
            assert sub.checkpoint == 1
            assert isinstance(sub.error, RuntimeError)
        else:
            await sub.wait_until(3, WAIT)
            expected = [1, 2, 3] if policy is OnHandlerError.SKIP else [1, 2, 2, 3]
            assert calls == expected, calls
            assert sub.error is None
        await adapter.unsubscribe(sub)

    @clause(
        "event_store.subscribe.retry_exhausted",
        "a handler that keeps failing under retry is retried a few times, then the "
        "subscription stops as with stop: error kept, wait_until re-raises, checkpoint before",
    )
    @requires(EventStoreCapability.SUBSCRIBE)
    async def test_retry_exhausted(self, adapter: EventStore) -> None:
        await adapter.append("a", [ev(i=1), ev(i=2), ev(i=3)])
        calls: list[int] = []

        async def handler(e: RecordedEvent) -> None:
            calls.append(e.data["i"])
            if e.data["i"] == 2:
                raise RuntimeError("always")

        sub = await adapter.subscribe(handler, on_error=OnHandlerError.RETRY)
        with pytest.raises(RuntimeError):
            await sub.wait_until(3, WAIT)
        assert sub.checkpoint == 1, f"checkpoint {sub.checkpoint} moved past the failing event"
        assert isinstance(sub.error, RuntimeError), f"error is {sub.error!r}"
        tries = calls.count(2)
        assert 2 <= tries <= MAX_HANDLER_ATTEMPTS, f"the failing event was tried {tries} times"
        await asyncio.sleep(0.05)
        assert 3 not in calls, "the subscription went on past an event whose retries ran out"
        assert calls.count(2) == tries, "the subscription kept retrying after it stopped"
        await adapter.unsubscribe(sub)

    @clause(
        "event_store.subscribe.timeout",
        "wait_until past its timeout raises the port's PortTimeoutError",
    )
    @requires(EventStoreCapability.SUBSCRIBE)
    async def test_wait_until_timeout(self, adapter: EventStore) -> None:
        async def handler(e: RecordedEvent) -> None:
            return None

        sub = await adapter.subscribe(handler)
        try:
            with pytest.raises(PortTimeoutError):
                await sub.wait_until(1_000, 0.05)
        finally:
            await adapter.unsubscribe(sub)

    @clause(
        "event_store.subscribe.during_catch_up",
        "events committed while catch-up runs are delivered exactly once, in position order",
    )
    @requires(EventStoreCapability.SUBSCRIBE)
    async def test_events_committed_during_catch_up(self, adapter: EventStore) -> None:
        for k in range(3):
            await adapter.append("a", [ev(i=k), ev(i=k)])
        got: list[int] = []
        appended: list[int] = []
        four_more = asyncio.Event()

        async def handler(e: RecordedEvent) -> None:
            got.append(e.position)
            if len(appended) < 4:  # commit more while the stored events are being delivered
                r = await adapter.append(f"w{len(appended)}", [ev(i=9)])
                appended.extend(r.positions)
                if len(appended) == 4:
                    four_more.set()

        sub = await adapter.subscribe(handler)
        try:
            await asyncio.wait_for(four_more.wait(), WAIT)
            every = [e.position for e in await adapter.read_all()]
            await sub.wait_until(every[-1], WAIT)
            await asyncio.sleep(0.05)
            assert got == every, f"delivered {got}, stored {every}"
        finally:
            await adapter.unsubscribe(sub)

    @clause("event_store.subscribe.backpressure", "a slow handler delays delivery, drops nothing")
    @requires(EventStoreCapability.SUBSCRIBE)
    async def test_backpressure(self, adapter: EventStore) -> None:
        got: list[int] = []
        gate = asyncio.Event()

        async def handler(e: RecordedEvent) -> None:
            await gate.wait()
            got.append(e.position)

        sub = await adapter.subscribe(handler)
        r = None
        for k in range(20):
            r = await adapter.append("a", [ev(i=k) for _ in range(5)])
        assert r is not None
        assert sub.checkpoint == 0
        gate.set()
        await sub.wait_until(r.positions[-1], WAIT)
        assert got == [e.position for e in await adapter.read_all()]
        await adapter.unsubscribe(sub)

    @clause("event_store.subscribe.unsupported", "without SUBSCRIBE, subscribe raises Unsupported")
    @requires_absent(EventStoreCapability.SUBSCRIBE)
    async def test_subscribe_unsupported(self, adapter: EventStore) -> None:
        async def handler(e: RecordedEvent) -> None:
            return None

        with pytest.raises(UnsupportedError):
            await adapter.subscribe(handler)

    # -- backend faults ----------------------------------------------------------------

    @clause(
        "event_store.faults.unavailable",
        "an unreachable backend raises UnavailableError, an append then writes nothing, and "
        "the store serves again once the backend is back",
    )
    async def test_backend_unreachable(self, adapter: EventStore, faults: FaultInjector) -> None:
        first = await adapter.append("s", [ev(i=1)])
        calls: list[tuple[str, Any]] = [
            ("append", lambda: adapter.append("s", [ev(i=2)], 1)),
            ("append to a new stream", lambda: adapter.append("t", [ev(i=3)])),
            ("read", lambda: adapter.read("s")),
            ("read_all", adapter.read_all),
        ]
        if supports(adapter, EventStoreCapability.QUERY):
            calls.append(("query", lambda: adapter.query(EventQuery())))
        faults.arm()
        for name, call in calls:
            try:
                await call()
            except UnavailableError:
                continue
            except Exception as exc:
                raise AssertionError(
                    f"{name} with the backend unreachable raised {exc!r}, not UnavailableError"
                ) from exc
            raise AssertionError(f"{name} succeeded with the backend unreachable")
        faults.clear()
        assert faults.calls, "the adapter accepts faults= but never reports reaching its backend"
        stored = await adapter.read_all()
        assert [e.position for e in stored] == list(first.positions), (
            "an append that failed with the backend unreachable wrote events"
        )
        again = await adapter.append("s", [ev(i=4)], 1)
        assert again.version == 2, "the store did not recover once the backend was back"

    # -- tenancy -------------------------------------------------------------------------

    @pytest.fixture
    def scoped_adapter(
        self, make_adapter: Any, kit_runner: LoopRunner, kit_clock: FakeClock
    ) -> Iterator[EventStore]:
        """A fresh adapter made with ``tenant_scoped=True`` (skips when it cannot be)."""
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so scoping is not checked")
        made: EventStore = kit_runner.run(
            open_adapter(with_options(make_adapter, tenant_scoped=True), clock=kit_clock)
        )
        try:
            if not supports(made, EventStoreCapability.TENANT_SCOPED):
                pytest.skip(f"{type(made).__name__} does not declare 'event_store.tenant_scoped'")
            yield made
        finally:
            kit_runner.run(close_adapter(made))

    @clause(
        "event_store.tenant.fail_closed",
        "a tenant-scoped store refuses every call made with no tenant, and writes nothing",
    )
    def test_tenant_fail_closed(self, scoped_adapter: EventStore, kit_runner: LoopRunner) -> None:
        async def handler(e: RecordedEvent) -> None:
            return None

        calls: list[Any] = [
            lambda: scoped_adapter.append("s", [ev()]),
            lambda: scoped_adapter.read("s"),
            lambda: scoped_adapter.read_all(),
        ]
        if supports(scoped_adapter, EventStoreCapability.QUERY):
            calls.append(lambda: scoped_adapter.query(EventQuery()))
        if supports(scoped_adapter, EventStoreCapability.SUBSCRIBE):
            calls.append(lambda: scoped_adapter.subscribe(handler))
        for call in calls:
            with pytest.raises(TenantRequiredError):
                kit_runner.run(call())

        async def nothing_written() -> None:
            with tenant_scope("anyone"):
                assert await scoped_adapter.read_all() == [], "a refused append wrote events"

        kit_runner.run(nothing_written())

    @clause(
        "event_store.tenant.isolation",
        "each tenant has its own streams, ids and positions: no call for one tenant reads, "
        "queries or subscribes to another's events",
    )
    def test_tenant_isolation(self, scoped_adapter: EventStore, kit_runner: LoopRunner) -> None:
        shared_id = "same-id-in-both-tenants"

        alices = [NewEvent("E", {"who": "alice"}, id=shared_id), ev(i=1)]

        async def body() -> None:
            with tenant_scope("alice"):
                ra = await scoped_adapter.append("s", alices)
            with tenant_scope("bob"):
                rb = await scoped_adapter.append(
                    "s", [NewEvent("E", {"who": "bob"}, id=shared_id)], StreamState.NO_STREAM
                )
                assert rb.version == 1, "bob's stream 's' saw alice's events"
                assert [e.data for e in await scoped_adapter.read("s")] == [{"who": "bob"}]
                every = await scoped_adapter.read_all()
                assert [e.data for e in every] == [{"who": "bob"}], "read_all crossed tenants"
                assert every[0].position == rb.positions[0]
                if supports(scoped_adapter, EventStoreCapability.GAPLESS):
                    assert rb.positions == (1,), "positions are not per tenant"
                if supports(scoped_adapter, EventStoreCapability.QUERY):
                    found = await scoped_adapter.query(EventQuery(streams=frozenset({"s"})))
                    assert [e.data for e in found] == [{"who": "bob"}], "query crossed tenants"
            with tenant_scope("carol"):
                with pytest.raises(NotFoundError):
                    await scoped_adapter.read("s")
                assert await scoped_adapter.read_all() == []
            with tenant_scope("alice"):
                again = await scoped_adapter.append("s", alices, StreamState.ANY)
                assert again.version == ra.version == 2, "bob's event changed alice's stream"

        kit_runner.run(body())

    @clause(
        "event_store.tenant.adversarial",
        "tenant ids and stream names holding the adapter's separators (':', '/') never "
        "collide: tenant 'a' stream 'b:s' is not tenant 'a:b' stream 's'",
    )
    def test_tenant_and_stream_separators(
        self, scoped_adapter: EventStore, kit_runner: LoopRunner
    ) -> None:
        pairs = [("a", "b:s"), ("a:b", "s"), ("a", "b/s"), ("a/b", "s"), ("a:b:s", "x")]

        async def body() -> None:
            for tenant, stream in pairs:
                with tenant_scope(tenant):
                    await scoped_adapter.append(stream, [ev(tenant=tenant, stream=stream)])
            for tenant, stream in pairs:
                with tenant_scope(tenant):
                    got = [
                        (e.data["tenant"], e.data["stream"])
                        for e in await scoped_adapter.read(stream)
                    ]
                    assert got == [(tenant, stream)], f"tenant {tenant!r} stream {stream!r}: {got}"
                    mine = [e.data["tenant"] for e in await scoped_adapter.read_all()]
                    assert set(mine) == {tenant}, f"tenant {tenant!r} read_all saw {mine}"

        kit_runner.run(body())

    @clause(
        "event_store.tenant.subscription",
        "a subscription delivers only the events of the tenant current when it was made",
    )
    @requires(EventStoreCapability.SUBSCRIBE)
    def test_tenant_subscription(self, scoped_adapter: EventStore, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            got: list[str] = []

            async def handler(e: RecordedEvent) -> None:
                got.append(e.data["who"])

            with tenant_scope("alice"):
                await scoped_adapter.append("s", [NewEvent("E", {"who": "alice"})])
            with tenant_scope("bob"):
                await scoped_adapter.append("s", [NewEvent("E", {"who": "bob"})])
                sub = await scoped_adapter.subscribe(handler)
            try:
                with tenant_scope("alice"):
                    await scoped_adapter.append("s", [NewEvent("E", {"who": "alice"})] * 1)
                with tenant_scope("bob"):
                    last = await scoped_adapter.append("s", [NewEvent("E", {"who": "bob"})])
                await sub.wait_until(last.positions[-1], WAIT)
                await asyncio.sleep(0.05)
                assert got == ["bob", "bob"], f"bob's subscription delivered {got}"
            finally:
                await scoped_adapter.unsubscribe(sub)

        kit_runner.run(body())

    # -- the model -----------------------------------------------------------------------

    @clause("event_store.model", "any sequence of operations behaves like the reference model")
    def test_state_machine(self, make_adapter: Any, kit_settings: KitSettings) -> None:
        run_machine(EventStoreMachine, make_adapter, kit_settings)


# Only valid input: U+0000 is refused by every adapter (clause event_store.append.rejects_nul
# checks that), so generated text never contains it, nor lone surrogates (not UTF-8, as with
# st.text()'s default alphabet). Streams, types and keys are fixed ASCII.
streams = st.sampled_from(["a", "b", "c"])
types = st.sampled_from(["X", "Y"])
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=3)
scalars = st.one_of(
    st.integers(-3, 3), st.sampled_from([-1.5, 0.5, 2.0]), st.booleans(), texts, st.none()
)
payloads = st.dictionaries(
    st.sampled_from(["k", "n", "o"]),
    st.one_of(scalars, st.dictionaries(st.sampled_from(["k", "n"]), scalars, max_size=2)),
    max_size=3,
)
where_conditions = st.one_of(
    st.builds(Where, st.sampled_from(["data.k", "data.o.k", "data.o"]), st.just("exists")),
    st.builds(
        Where,
        st.sampled_from(["data.k", "data.n", "data.o.k"]),
        st.sampled_from(["==", "!="]),
        scalars,
    ),
    st.builds(
        Where,
        st.sampled_from(["data.k", "data.n", "data.o.n"]),
        st.sampled_from(["<", "<=", ">", ">="]),
        st.one_of(st.integers(-3, 3), st.sampled_from([-1.5, 0.5]), texts),
    ),
    st.builds(
        Where,
        st.sampled_from(["data.k", "data.o.k"]),
        st.just("in"),
        st.lists(scalars, min_size=1, max_size=3),
    ),
)


def _model_where(data: dict[str, Any], condition: Where) -> bool:
    """The port's where semantics, written from its docstring (the kit's own model)."""
    value: Any = data
    for key in condition.path.split(".")[1:]:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]

    def kind(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return repr(v)  # True, False and None each equal only themselves
        if isinstance(v, (int, float)):
            return "number"
        return "str" if isinstance(v, str) else "container"

    def equal(a: Any, b: Any) -> bool:
        return kind(a) == kind(b) and (kind(a) not in ("number", "str") or a == b)

    op, want = condition.op, condition.value
    if op == "exists":
        return True
    if op == "==":
        return equal(value, want)
    if op == "!=":
        return not equal(value, want)
    if op == "in":
        return any(equal(value, w) for w in want)
    if kind(value) != kind(want):
        return False
    return bool(
        {"<": value < want, "<=": value <= want, ">": value > want, ">=": value >= want}[op]
    )


class EventStoreMachine(AdapterMachine[EventStore]):
    """Random appends, retries and reads against a pure model of streams and a global log."""

    def __init__(self, factory: Any, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.log: list[tuple[str, str, str, dict[str, Any]]] = []  # (stream, id, type, data)
        self.last_batch: tuple[str, list[NewEvent], Any] | None = None
        self.counter = 0

    def _version(self, stream: str) -> int:
        return sum(1 for s, *_ in self.log if s == stream)

    @rule(
        stream=streams,
        kinds=st.lists(st.tuples(types, payloads), min_size=1, max_size=3),
        mode=st.sampled_from(["right", "wrong", "any", "no_stream", "exists"]),
    )
    def append(self, stream: str, kinds: list[tuple[str, dict[str, Any]]], mode: str) -> None:
        batch = []
        for t, d in kinds:
            self.counter += 1
            batch.append(NewEvent(t, d, id=f"e{self.counter}"))
        version = self._version(stream)
        expected: Any = {
            "right": version,
            "wrong": version + 1,
            "any": StreamState.ANY,
            "no_stream": StreamState.NO_STREAM,
            "exists": StreamState.STREAM_EXISTS,
        }[mode]
        ok = mode in ("right", "any") or (mode == "no_stream") == (version == 0)
        if mode == "wrong":
            ok = False
        if ok:
            result = self.run(self.adapter.append(stream, batch, expected))
            assert result.version == version + len(batch), (result, version)
            self.log.extend((stream, e.id, e.type, dict(e.data)) for e in batch)
            self.last_batch = (stream, batch, expected)
        else:
            with pytest.raises(WrongExpectedVersionError):
                self.run(self.adapter.append(stream, batch, expected))

    @precondition(lambda self: self.last_batch is not None)
    @rule()
    def retry_last(self) -> None:
        assert self.last_batch is not None
        stream, batch, _ = self.last_batch
        result = self.run(self.adapter.append(stream, copy.copy(batch), StreamState.ANY))
        stored = [i for s, i, *_ in self.log if s == stream]
        assert result.version == stored.index(batch[-1].id) + 1

    @rule(stream=streams, start=st.integers(0, 6), limit=st.none() | st.integers(0, 4))
    def read(self, stream: str, start: int, limit: int | None) -> None:
        mine = [i for s, i, *_ in self.log if s == stream]
        if not mine:
            with pytest.raises(NotFoundError):
                self.run(self.adapter.read(stream, start, limit))
            return
        got = self.run(self.adapter.read(stream, start, limit))
        want = mine[max(start, 1) - 1 :]
        assert _ids(got) == (want if limit is None else want[:limit])

    @rule(t=types)
    def query_type(self, t: str) -> None:
        if not supports(self.adapter, EventStoreCapability.QUERY):
            return
        got = self.run(self.adapter.query(EventQuery(types=frozenset({t}))))
        assert _ids(got) == [i for _, i, ty, _ in self.log if ty == t]

    @rule(key=st.sampled_from(["k", "n"]), value=st.integers(-3, 3) | st.booleans())
    def query_data(self, key: str, value: Any) -> None:
        if not supports(self.adapter, EventStoreCapability.QUERY):
            return
        got = self.run(self.adapter.query(EventQuery(data={key: value})))

        def same(a: Any) -> bool:
            return isinstance(a, bool) == isinstance(value, bool) and a == value

        assert _ids(got) == [i for *_, i, _, d in self.log if key in d and same(d[key])]

    @rule(limit=st.none() | st.integers(1, 4), t=st.none() | types)
    def query_backwards(self, limit: int | None, t: str | None) -> None:
        if not supports(self.adapter, EventStoreCapability.QUERY):
            return
        kinds = frozenset({t}) if t else frozenset()
        got = self.run(self.adapter.query(EventQuery(types=kinds, backwards=True, limit=limit)))
        want = [i for _, i, ty, _ in reversed(self.log) if t is None or ty == t]
        assert _ids(got) == (want if limit is None else want[:limit])

    @rule(conditions=st.lists(where_conditions, min_size=1, max_size=2))
    def query_where(self, conditions: list[Where]) -> None:
        if not supports(self.adapter, EventStoreCapability.QUERY):
            return
        got = self.run(self.adapter.query(EventQuery(where=tuple(conditions))))
        want = [i for *_, i, _, d in self.log if all(_model_where(d, c) for c in conditions)]
        assert _ids(got) == want, f"where {conditions}"

    @invariant()
    def global_log(self) -> None:
        events = self.run(self.adapter.read_all())
        assert _ids(events) == [i for _, i, *_ in self.log]
        positions = [e.position for e in events]
        assert positions == sorted(set(positions))
        if supports(self.adapter, EventStoreCapability.GAPLESS):
            assert positions == list(range(1, len(positions) + 1))
