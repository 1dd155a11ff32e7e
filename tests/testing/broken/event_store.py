"""Deliberately broken variants of the memory EventStore, one bug each.

Each names in ``clause`` the contract clause its bug must break; tests/testing/
test_event_store_broken.py asserts the EventStore contract suite fails on that clause.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from portfolio_core.adapters._shared.event_store.index import EventIndex
from portfolio_core.adapters.memory.event_store import MemoryEventStore

__all__ = ["VARIANTS", "MemoryEventStore"]
from portfolio_core.ports import (
    AppendResult,
    ConflictError,
    Direction,
    EventHandler,
    EventQuery,
    ExpectedVersion,
    InvalidInputError,
    NewEvent,
    NotFoundError,
    OnHandlerError,
    RecordedEvent,
    StreamState,
    Subscription,
    Where,
    current_tenant,
    require_tenant,
    tenant_scope,
)


class _Broken(MemoryEventStore):
    clause: ClassVar[str] = ""


class ExpectedVersionIgnored(_Broken):
    clause = "event_store.append.expected_version"

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        return await super().append(stream, events, StreamState.ANY)


class PositionsOutOfOrder(_Broken):
    clause = "event_store.read_all.order"

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        events = await super().read_all(from_position, limit)
        if len(events) > 2:
            events[1], events[2] = events[2], events[1]
        return events


class LostEventInBatch(_Broken):
    clause = "event_store.append.result"

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        kept = list(events)[:-1] if len(events) > 1 else events
        result = await super().append(stream, kept, expected_version)
        return dataclasses.replace(result, version=result.version + len(events) - len(kept))


class NonAtomicBatch(_Broken):
    clause = "event_store.append.invalid"

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        result = None
        for i, event in enumerate(events):
            result = await super().append(
                stream, [event], expected_version if i == 0 else StreamState.ANY
            )
        if result is None:
            return await super().append(stream, events, expected_version)
        return result


class DuplicateOnRetry(_Broken):
    clause = "event_store.append.idempotent"

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        fresh = [dataclasses.replace(e, id=str(uuid.uuid4())) for e in events]
        if len({e.id for e in events}) < len(events):
            fresh = list(events)  # keep duplicate-id validation
        return await super().append(stream, fresh, expected_version)


class IdReuseAllowed(_Broken):
    clause = "event_store.append.id_conflict"

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        try:
            return await super().append(stream, events, expected_version)
        except ConflictError as exc:
            if type(exc) is not ConflictError:
                raise
            fresh = [dataclasses.replace(e, id=str(uuid.uuid4())) for e in events]
            return await super().append(stream, fresh, expected_version)


class LiveMutableObjects(_Broken):
    clause = "event_store.read.snapshot"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._live: dict[str, RecordedEvent] = {}

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        events = await super().read(stream, from_version, limit, direction)
        return [self._live.setdefault(e.id, e) for e in events]


class UnknownStreamReadsEmpty(_Broken):
    clause = "event_store.read.not_found"

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        try:
            return await super().read(stream, from_version, limit, direction)
        except NotFoundError:
            return []


class DirectionIgnored(_Broken):
    clause = "event_store.read.range"

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        return await super().read(stream, max(from_version, 1), limit, Direction.FORWARDS)


class TrueEqualsOne(_Broken):
    clause = "event_store.query.filters"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        loose = dataclasses.replace(query, data={}, limit=None)
        out = [
            e
            for e in await super().query(loose)
            if all(k in e.data and e.data[k] == v for k, v in query.data.items())
        ]
        return out if query.limit is None else out[: query.limit]


class WhereLooselyTyped(_Broken):
    """Evaluates where conditions with Python's own ==/< (True == 1, 10 == "10" is False but
    True < 2 holds): what a store comparing without JSON types would do."""

    clause = "event_store.query.where"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        loose = dataclasses.replace(query, where=(), limit=None)
        out = [e for e in await super().query(loose) if all(_loose(e, c) for c in query.where)]
        return out if query.limit is None else out[: query.limit]


def _loose(event: RecordedEvent, condition: Where) -> bool:
    column, *keys = condition.path.split(".")
    value: Any = event.data if column == "data" else event.metadata
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    want = condition.value
    try:
        return {
            "exists": lambda: True,
            "==": lambda: value == want,
            "!=": lambda: value != want,
            "in": lambda: value in want,
            "<": lambda: value < want,
            "<=": lambda: value <= want,
            ">": lambda: value > want,
            ">=": lambda: value >= want,
        }[condition.op]()
    except TypeError:
        return False


class WhereSkipsNestedPaths(_Broken):
    """Treats a condition below the first key as always true (a store indexing only
    top-level fields); the state machine's random nested queries find it."""

    clause = "event_store.model"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        kept = tuple(c for c in query.where if c.path.count(".") < 2)
        return await super().query(dataclasses.replace(query, where=kept))


class BackwardsIgnored(_Broken):
    """Answers backwards queries in ascending order (limit keeping the first ones)."""

    clause = "event_store.query.ids_and_pages"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        return await super().query(dataclasses.replace(query, backwards=False))


class WhereNotValidated(_Broken):
    """Drops conditions it cannot read instead of refusing the query."""

    clause = "event_store.query.where_invalid"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        try:
            return await super().query(query)
        except InvalidInputError:
            return await super().query(dataclasses.replace(query, where=()))


class NoCatchUp(_Broken):
    clause = "event_store.subscribe.catch_up_live"

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        start = max(from_position, len(await self.read_all()) + 1)
        return await super().subscribe(
            handler, stream=stream, from_position=start, filter=filter, on_error=on_error
        )


class HandlerErrorsSwallowed(_Broken):
    clause = "event_store.subscribe.on_error"

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        return await super().subscribe(
            handler,
            stream=stream,
            from_position=from_position,
            filter=filter,
            on_error=OnHandlerError.SKIP,
        )


class GappyButClaimsGapless(_Broken):
    clause = "event_store.read_all.gapless"

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        events = await super().read_all(from_position, limit)
        return [dataclasses.replace(e, position=e.position * 2) for e in events]


class IdempotentOnlyAtTail(_Broken):
    """Recognises a retry only when the batch is still the stream's last append."""

    clause = "event_store.append.idempotent_not_tail"

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        ids = [e.id for e in events]
        try:
            stored = [e.id for e in await self.read(stream)]
        except NotFoundError:
            stored = []
        if set(ids) & set(stored) and stored[-len(ids) :] != ids:
            raise ConflictError("ids already stored, and not by the last append")
        return await super().append(stream, events, expected_version)


class SizeCountsCharacters(_Broken):
    """Measures an event in characters, not UTF-8 bytes: non-ASCII events slip through."""

    clause = "event_store.append.size_bytes"
    limit: ClassVar[int] = 1_000

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_event_bytes=self.limit, **kwargs)

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        for e in events:
            size = (
                sum(
                    len(json.dumps(part, ensure_ascii=False, separators=(",", ":")))
                    for part in (e.data, e.metadata)
                )
                + len(e.type)
                + len(e.id)
            )
            if size > self.limit:
                raise InvalidInputError(f"{size} characters", field="events")
        self.max_event_bytes = 4 * self.limit
        try:
            return await super().append(stream, events, expected_version)
        finally:
            self.max_event_bytes = self.limit


class ReadAllHandsOutItsCache(_Broken):
    """Caches read_all's list and hands the same list object out until the next append."""

    clause = "event_store.snapshot.all"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cached: dict[tuple[int, int | None], list[RecordedEvent]] = {}

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        self._cached.clear()
        return await super().append(stream, events, expected_version)

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        key = (from_position, limit)
        if key not in self._cached:
            self._cached[key] = await super().read_all(from_position, limit)
        return self._cached[key]


class QueryFiltersOr(_Broken):
    """Combines query filters with OR: an event matching any one filter is returned."""

    clause = "event_store.query.and"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        singles = [
            EventQuery(types=query.types) if query.types else None,
            EventQuery(streams=query.streams) if query.streams else None,
            EventQuery(correlation_id=query.correlation_id) if query.correlation_id else None,
            *(EventQuery(data={k: v}) for k, v in query.data.items()),
            *(EventQuery(metadata={k: v}) for k, v in query.metadata.items()),
        ]
        found: dict[int, RecordedEvent] = {}
        for single in singles:
            if single is not None:
                for e in await super().query(single):
                    found[e.position] = e
        if not any(singles):
            return await super().query(query)
        return [found[p] for p in sorted(found)][: query.limit]


class IntIsNotFloat(_Broken):
    """Compares data fields with their Python types too: 1 does not match 1.0."""

    clause = "event_store.query.numbers"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        return [
            e
            for e in await super().query(query)
            if all(type(e.data[k]) is type(v) for k, v in query.data.items())
        ]


class RetriesForever(_Broken):
    """on_error=retry never gives up on an event."""

    clause = "event_store.subscribe.retry_exhausted"

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        sub = await super().subscribe(
            handler, stream=stream, from_position=from_position, filter=filter, on_error=on_error
        )
        sub._max_retries = 1_000  # type: ignore[attr-defined]
        sub._retry_delay = 0.0001  # type: ignore[attr-defined]
        return sub


class BuiltinTimeout(_Broken):
    """wait_until raises the built-in TimeoutError, not the port's PortTimeoutError."""

    clause = "event_store.subscribe.timeout"

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        sub = await super().subscribe(
            handler, stream=stream, from_position=from_position, filter=filter, on_error=on_error
        )

        async def wait_until(position: int, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
            while sub.checkpoint < position:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"position {position} not reached")
                await asyncio.sleep(0.005)

        sub.wait_until = wait_until  # type: ignore[method-assign]
        return sub


class LiveStartsAtSubscribeTimeHead(_Broken):
    """Runs catch-up and live side by side, live from the head seen at subscribe time: an
    event committed during catch-up is delivered by both."""

    clause = "event_store.subscribe.during_catch_up"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._live: dict[int, Subscription] = {}

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        head = len(await self.read_all())
        catch_up = await super().subscribe(
            handler, stream=stream, from_position=from_position, filter=filter, on_error=on_error
        )
        self._live[id(catch_up)] = await super().subscribe(
            handler, stream=stream, from_position=head + 1, filter=filter, on_error=on_error
        )
        return catch_up

    async def unsubscribe(self, subscription: Subscription) -> None:
        live = self._live.pop(id(subscription), None)
        if live is not None:
            await super().unsubscribe(live)
        await super().unsubscribe(subscription)


class TenantOptional(_Broken):
    """tenant_scoped, but a call with no tenant falls back to the unscoped partition."""

    clause = "event_store.tenant.fail_closed"

    def _tenant(self) -> str:
        tenant = current_tenant()
        return tenant.tenant_id if self.tenant_scoped and tenant is not None else ""


class ReadAllAcrossTenants(_Broken):
    """Scopes streams per tenant but reads the global log of every tenant."""

    clause = "event_store.tenant.isolation"

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        self._tenant()
        everyone: list[RecordedEvent] = []
        for tenant in list(self._index._parts):
            with tenant_scope(tenant or "unscoped"):
                if tenant:
                    everyone.extend(await super().read_all(from_position, None))
        everyone.sort(key=lambda e: e.position)
        return everyone[:limit]


class TenantJoinedIntoStreamName(_Broken):
    """Keeps every tenant in one log, streams named ``tenant:stream``: tenant 'a' stream 'b:s'
    and tenant 'a:b' stream 's' are the same stream."""

    clause = "event_store.tenant.adversarial"

    def _scoped(self) -> str:
        return require_tenant().tenant_id if self.tenant_scoped else ""

    def _tenant(self) -> str:
        self._scoped()
        return ""

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        result = await super().append(f"{self._scoped()}:{stream}", events, expected_version)
        return dataclasses.replace(result, stream=stream)

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        tenant = self._scoped()
        events = await super().read(f"{tenant}:{stream}", from_version, limit, direction)
        return [dataclasses.replace(e, stream=stream) for e in events]

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        prefix = f"{self._scoped()}:"
        return [
            dataclasses.replace(e, stream=e.stream[len(prefix) :])
            for e in await super().read_all(from_position, limit)
            if e.stream.startswith(prefix)
        ]


class SubscriptionSeesEveryTenant(_Broken):
    """A subscription's reads run outside the tenant it was made for: it sees every tenant."""

    clause = "event_store.tenant.subscription"

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        self._tenant()

        async def every_tenant(query: EventQuery) -> list[RecordedEvent]:
            found: list[RecordedEvent] = []
            for tenant in list(self._index._parts):
                if tenant:
                    with tenant_scope(tenant):
                        found.extend(await self.query(query))
            return sorted(found, key=lambda e: e.position)

        return self._subscriptions.open(
            every_tenant,
            handler,
            stream=stream,
            from_position=from_position,
            filter=filter,
            on_error=on_error,
        )


class AppendWritesThenFails(_Broken):
    """Writes the batch, then finds the backend gone: the caller sees a failure, yet the
    events are stored (a retry would then conflict or duplicate)."""

    clause = "event_store.faults.unavailable"

    def _backend(self, operation: str) -> None:
        if operation != "append":
            super()._backend(operation)

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        result = await super().append(stream, events, expected_version)
        super()._backend("append")
        return result


class DriverErrorEscapes(_Broken):
    """Lets the backend's ConnectionError escape instead of UnavailableError."""

    clause = "event_store.faults.unavailable"

    def _backend(self, operation: str) -> None:
        if self._faults is not None:
            self._faults(operation)


class _NoMaxRule(EventIndex):
    def plan(self, tenant: str, *args: Any, **kwargs: Any) -> Any:
        self._part(tenant).last_time = 0  # forget the previous event's time
        return super().plan(tenant, *args, **kwargs)


class RecordedAtGoesBackWithTheClock(_Broken):
    """Stamps recorded_at with the raw wall clock: when it steps back, so does recorded_at."""

    clause = "event_store.recorded_at.wall_clock"

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        super().__init__(wall_clock=wall_clock)
        self._index = _NoMaxRule()


class UntilInclusive(_Broken):
    """Treats until as inclusive."""

    clause = "event_store.query.time_controlled"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        if query.until is None:
            return await super().query(query)
        loose = dataclasses.replace(query, until=query.until + timedelta(microseconds=1))
        return await super().query(loose)


class AcceptsASingleEvent(_Broken):
    """Lenient: wraps a lone NewEvent in a list instead of refusing it."""

    clause = "event_store.args.invalid"

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        if isinstance(events, NewEvent):
            events = [events]
        return await super().append(stream, events, expected_version)


class ListsMatchByLength(_Broken):
    """Compares list fields of a query by their length only."""

    clause = "event_store.query.numbers"

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        lists = {k: v for k, v in query.data.items() if isinstance(v, list)}
        if not lists:
            return await super().query(query)
        rest = dataclasses.replace(
            query, data={k: v for k, v in query.data.items() if k not in lists}
        )
        return [
            e
            for e in await super().query(rest)
            if all(
                isinstance(e.data.get(k), list) and len(e.data[k]) == len(v)
                for k, v in lists.items()
            )
        ]


VARIANTS: list[type[_Broken]] = [
    ExpectedVersionIgnored,
    PositionsOutOfOrder,
    LostEventInBatch,
    NonAtomicBatch,
    DuplicateOnRetry,
    IdReuseAllowed,
    LiveMutableObjects,
    UnknownStreamReadsEmpty,
    DirectionIgnored,
    TrueEqualsOne,
    WhereLooselyTyped,
    WhereNotValidated,
    WhereSkipsNestedPaths,
    BackwardsIgnored,
    NoCatchUp,
    HandlerErrorsSwallowed,
    GappyButClaimsGapless,
    IdempotentOnlyAtTail,
    SizeCountsCharacters,
    ReadAllHandsOutItsCache,
    QueryFiltersOr,
    IntIsNotFloat,
    RetriesForever,
    BuiltinTimeout,
    LiveStartsAtSubscribeTimeHead,
    TenantOptional,
    ReadAllAcrossTenants,
    TenantJoinedIntoStreamName,
    SubscriptionSeesEveryTenant,
    AppendWritesThenFails,
    DriverErrorEscapes,
    RecordedAtGoesBackWithTheClock,
    UntilInclusive,
    AcceptsASingleEvent,
    ListsMatchByLength,
]
