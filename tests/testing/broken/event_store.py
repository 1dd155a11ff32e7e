"""Deliberately broken variants of the memory EventStore, one bug each.

Each names in ``clause`` the contract clause its bug must break; tests/testing/
test_event_store_broken.py asserts the EventStore contract suite fails on that clause.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

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
]
