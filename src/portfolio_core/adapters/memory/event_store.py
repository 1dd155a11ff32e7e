"""The reference EventStore: every clause of the port, in process, as simply as possible.

Thread-safe (one lock), usable from several event loops. Positions are gapless and local to
a partition (the whole store, or one tenant when ``tenant_scoped``). Stored events are kept as
encoded JSON, so nothing a caller does to a returned event changes the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.event_store import (
    DEFAULT_MAX_EVENT_BYTES,
    EncodedEvent,
    PollingSubscription,
    Wakeup,
    check_expected,
    encode_batch,
    idempotent_replay,
    loads,
    matches,
    validate_expected,
    validate_position,
    validate_query,
    validate_read_args,
    validate_stream,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import InvalidInputError, NotFoundError
from portfolio_core.ports.event_store import (
    AppendResult,
    Direction,
    EventHandler,
    EventQuery,
    EventStoreCapability,
    ExpectedVersion,
    NewEvent,
    OnHandlerError,
    RecordedEvent,
    StreamState,
    Subscription,
)
from portfolio_core.ports.tenant import require_tenant

__all__ = ["MemoryEventStore", "MemoryEventStoreConfig"]


class MemoryEventStoreConfig(BaseModel):
    """Configuration of :class:`MemoryEventStore`."""

    model_config = ConfigDict(extra="forbid")

    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, gt=0)
    tenant_scoped: bool = False
    subscription_batch: int = Field(256, gt=0)
    poll_interval: float = Field(1.0, gt=0)


@dataclass(slots=True)
class _Row:
    event: EncodedEvent
    stream: str
    version: int
    position: int
    recorded_at: float


@dataclass(slots=True)
class _Partition:
    rows: list[_Row] = field(default_factory=list)
    streams: dict[str, list[int]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    last_time: float = 0.0


def _to_event(row: _Row) -> RecordedEvent:
    e = row.event
    return RecordedEvent(
        id=e.id,
        stream=row.stream,
        type=e.type,
        data=loads(e.data),
        metadata=loads(e.metadata),
        version=row.version,
        position=row.position,
        recorded_at=datetime.fromtimestamp(row.recorded_at, UTC),
        correlation_id=e.correlation_id,
        causation_id=e.causation_id,
    )


class MemoryEventStore:
    """In-process event store (the executable specification of the EventStore port).

    Construct directly (``MemoryEventStore()``) or from a manifest (``memory``).
    """

    config_model: ClassVar[type[BaseModel]] = MemoryEventStoreConfig
    capabilities = declare(
        EventStoreCapability.SUBSCRIBE,
        EventStoreCapability.QUERY,
        EventStoreCapability.GAPLESS,
        EventStoreCapability.TENANT_SCOPED,
    )

    def __init__(
        self,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        tenant_scoped: bool = False,
        subscription_batch: int = 256,
        poll_interval: float = 1.0,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self.tenant_scoped = tenant_scoped
        self._batch = subscription_batch
        self._poll = poll_interval
        self._lock = threading.Lock()
        self._partitions: dict[str, _Partition] = {}
        self._wakeup = Wakeup()
        self._subs: dict[str, PollingSubscription] = {}

    @classmethod
    def from_config(cls, config: MemoryEventStoreConfig) -> Self:
        return cls(**config.model_dump())

    def __repr__(self) -> str:
        return f"MemoryEventStore(tenant_scoped={self.tenant_scoped})"

    def _partition_key(self) -> str:
        return require_tenant().tenant_id if self.tenant_scoped else ""

    def _partition(self) -> _Partition:
        key = self._partition_key()
        part = self._partitions.get(key)
        if part is None:
            with self._lock:
                part = self._partitions.setdefault(key, _Partition())
        return part

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        expected = validate_expected(expected_version)
        batch = encode_batch(stream, events, self.max_event_bytes)
        part = self._partition()
        with self._lock:
            if any(e.id in part.ids for e in batch):
                stored = []
                for e in batch:
                    i = part.ids.get(e.id)
                    r = None if i is None else part.rows[i]
                    stored.append(None if r is None else (r.stream, r.version, r.position))
                replay = idempotent_replay(stream, batch, expected, stored)
                if replay is not None:
                    return AppendResult(stream, replay[0], replay[1])
            indices = part.streams.get(stream, [])
            current = len(indices)
            check_expected(stream, expected, current)
            now = max(time.time(), part.last_time)
            part.last_time = now
            start = len(part.rows)
            new_indices = list(range(start, start + len(batch)))
            for k, e in enumerate(batch):
                part.rows.append(_Row(e, stream, current + k + 1, start + k + 1, now))
                part.ids[e.id] = start + k
            part.streams.setdefault(stream, indices).extend(new_indices)
            result = AppendResult(stream, current + len(batch), tuple(i + 1 for i in new_indices))
        self._wakeup.notify()
        return result

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        validate_stream(stream)
        validate_read_args(from_version, limit)
        direction = Direction(direction)
        part = self._partition()
        with self._lock:
            indices = part.streams.get(stream)
            if indices is None:
                raise NotFoundError(f"no stream {stream!r}", key=stream, port="EventStore")
            if direction is Direction.FORWARDS:
                chosen = indices[max(from_version, 1) - 1 :]
            else:
                top = len(indices) if from_version == 0 else min(from_version, len(indices))
                chosen = indices[:top][::-1]
            if limit is not None:
                chosen = chosen[:limit]
            rows = [part.rows[i] for i in chosen]
        return [_to_event(r) for r in rows]

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        validate_position(from_position, limit)
        part = self._partition()
        with self._lock:
            end = None if limit is None else from_position - 1 + limit
            rows = part.rows[from_position - 1 : end]
        return [_to_event(r) for r in rows]

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        validate_query(query)
        part = self._partition()
        with self._lock:
            rows = part.rows[query.from_position - 1 :]
        out: list[RecordedEvent] = []
        for row in rows:
            if query.limit is not None and len(out) >= query.limit:
                break
            if query.types and row.event.type not in query.types:
                continue
            if query.streams and row.stream not in query.streams:
                continue
            event = _to_event(row)
            if matches(event, query):
                out.append(event)
        return out

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        if stream is not None:
            validate_stream(stream)
        if filter is not None:
            validate_query(filter)
        if isinstance(from_position, bool) or not isinstance(from_position, int):
            raise InvalidInputError("from_position must be an int", field="from_position")
        self._partition_key()  # fail closed now, not in the background task
        base = filter or EventQuery()
        streams = frozenset({stream}) if stream is not None else base.streams
        if stream is not None and base.streams and stream not in base.streams:
            streams = frozenset({"\x00none"})

        async def fetch(position: int, limit: int) -> list[RecordedEvent]:
            q = EventQuery(
                types=base.types,
                streams=streams,
                correlation_id=base.correlation_id,
                since=base.since,
                until=base.until,
                data=base.data,
                metadata=base.metadata,
                from_position=max(position, base.from_position),
                limit=limit,
            )
            return await self.query(q)

        sub = PollingSubscription(
            handler,
            fetch,
            from_position=from_position,
            on_error=on_error,
            wakeup=self._wakeup,
            poll_interval=self._poll,
            batch_size=self._batch,
        )
        self._subs[sub.id] = sub
        return sub

    async def unsubscribe(self, subscription: Subscription) -> None:
        sub = self._subs.pop(subscription.id, None)
        if sub is not None:
            await sub.stop()

    async def aclose(self) -> None:
        """Stop every subscription; idempotent."""
        for sub_id in list(self._subs):
            sub = self._subs.pop(sub_id, None)
            if sub is not None:
                await sub.stop()
