"""Subscriptions: catch-up, filters, resume, handler errors, timeouts, backpressure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfolio_core.ports.errors import (
    PortTimeoutError,
    UnsupportedError,
)
from portfolio_core.ports.event_store import (
    EventQuery,
    EventStore,
    EventStoreCapability,
    OnHandlerError,
    RecordedEvent,
)
from portfolio_core.testing.clauses import clause, requires, requires_absent
from portfolio_core.testing.contracts.event_store._common import (
    MAX_HANDLER_ATTEMPTS,
    WAIT,
    ev,
)
from portfolio_core.testing.suite import ContractSuite


class SubscriptionClauses(ContractSuite[EventStore]):
    """Subscriptions: catch-up, filters, resume, handler errors, timeouts, backpressure."""

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
