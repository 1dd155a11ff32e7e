"""Queries: type and data filters, where conditions, time ranges, pages; recorded_at rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from portfolio_core.ports.errors import (
    InvalidInputError,
    UnsupportedError,
)
from portfolio_core.ports.event_store import (
    MAX_WHERE_IN,
    EventQuery,
    EventStore,
    EventStoreCapability,
    NewEvent,
    RecordedEvent,
    Where,
)
from portfolio_core.testing.clauses import clause, requires, requires_absent
from portfolio_core.testing.clock import FakeWallClock
from portfolio_core.testing.contracts.event_store._common import (
    ev,
)
from portfolio_core.testing.suite import ContractSuite


def _filters_holding(bad: str) -> list[tuple[dict[str, Any], str]]:
    """One query filter per string-valued field of `EventQuery` holding ``bad``, with the
    field the refusal must name."""
    return [
        ({"types": frozenset({bad})}, "types"),
        ({"streams": frozenset({bad})}, "streams"),
        ({"correlation_id": bad}, "correlation_id"),
        ({"data": {"k": bad}}, "data"),
        ({"metadata": {bad: 1}}, "metadata"),
    ]


class QueryClauses(ContractSuite[EventStore]):
    """Queries: type and data filters, where conditions, time ranges, pages; recorded_at rules."""

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
    @pytest.mark.parametrize(("kw", "field"), _filters_holding("a\x00"))
    async def test_query_rejects_nul(
        self, adapter: EventStore, kw: dict[str, Any], field: str
    ) -> None:
        await self._refused_filter(adapter, kw, field)

    @clause(
        "event_store.query.rejects_surrogates",
        "a query filter string holding a lone surrogate is refused",
    )
    @requires(EventStoreCapability.QUERY)
    @pytest.mark.parametrize(("kw", "field"), _filters_holding("a\udc80"))
    async def test_query_rejects_surrogates(
        self, adapter: EventStore, kw: dict[str, Any], field: str
    ) -> None:
        await self._refused_filter(adapter, kw, field)

    @staticmethod
    async def _refused_filter(adapter: EventStore, kw: dict[str, Any], field: str) -> None:
        """A query with the filter ``kw`` raises InvalidInputError naming ``field``."""
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
