"""The reference EventStore: every clause of the port, in process, as simply as possible.

Thread-safe (one lock), usable from several event loops. Positions are gapless and local to
a partition (the whole store, or one tenant when ``tenant_scoped``). Stored events are kept as
encoded JSON, so nothing a caller does to a returned event changes the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import ClassVar

from pydantic import BaseModel

from portfolio_core.adapters._shared.backend import reach_backend
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.event_store.index import (
    EventIndex,
    query_rows,
    row_to_event,
)
from portfolio_core.adapters._shared.event_store.partition import (
    EventStoreOptions,
    PartitionedEventStore,
)
from portfolio_core.adapters._shared.event_store.validation import (
    DEFAULT_MAX_EVENT_BYTES,
    encode_batch,
    validate_expected,
    validate_position,
    validate_query,
    validate_read_args,
    validate_stream,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.event_store import (
    AppendResult,
    Direction,
    EventQuery,
    EventStoreCapability,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamState,
)

__all__ = ["MemoryEventStore", "MemoryEventStoreConfig"]


class MemoryEventStoreConfig(EventStoreOptions):
    """Configuration of `MemoryEventStore`: the fields every event store has."""


class MemoryEventStore(PartitionedEventStore, Configurable):
    """In-process event store (the executable specification of the EventStore port).

    Construct directly (``MemoryEventStore()``) or from a manifest (``memory``). Subscribers
    are woken in process by every append (``poll_interval`` is only a safety net).
    ``faults`` is the conformance kit's hook for simulating an unreachable backend (see
    `portfolio_core.testing.faults`); ``wall_clock`` (``time.time`` by default) stamps
    ``recorded_at``.
    """

    config_model: ClassVar[type[BaseModel]] = MemoryEventStoreConfig
    capabilities = declare(
        EventStoreCapability.SUBSCRIBE,
        EventStoreCapability.QUERY,
        EventStoreCapability.GAPLESS,
        EventStoreCapability.TENANT_SCOPED,
        EventStoreCapability.COUNT,
    )

    def __init__(
        self,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        tenant_scoped: bool = False,
        subscription_batch: int = 256,
        poll_interval: float = 1.0,
        faults: Callable[[str], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            tenant_scoped=tenant_scoped,
            max_event_bytes=max_event_bytes,
            subscription_batch=subscription_batch,
            poll_interval=poll_interval,
        )
        self._faults = faults
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._index = EventIndex()

    def __repr__(self) -> str:
        return f"MemoryEventStore(tenant_scoped={self.tenant_scoped})"

    def _backend(self, operation: str) -> None:
        """Where a networked store would reach its server: a fault hook given as ``faults``
        (the conformance kit's) may raise here, before anything is read or written. An
        unreachable backend (``OSError``) is UnavailableError."""
        reach_backend(self._faults, operation, what="event store", port="event_store")

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        expected = validate_expected(expected_version)
        batch = encode_batch(stream, events, self.max_event_bytes)
        tenant = self._tenant()
        self._backend("append")
        with self._lock:
            planned = self._index.plan(tenant, stream, batch, expected, self._wall_clock)
            if isinstance(planned, tuple):
                return AppendResult(stream, planned[0], planned[1])
            self._index.add(tenant, planned)
        self._wakeup.notify()
        return AppendResult(stream, planned[-1].version, tuple(r.position for r in planned))

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        validate_stream(stream)
        validate_read_args(from_version, limit)
        backwards = Direction(direction) is Direction.BACKWARDS
        tenant = self._tenant()
        self._backend("read")
        with self._lock:
            rows = self._index.read(tenant, stream, from_version, limit, backwards)
        return [row_to_event(r) for r in rows]

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        validate_position(from_position, limit)
        tenant = self._tenant()
        self._backend("read_all")
        with self._lock:
            rows = self._index.read_all(tenant, from_position, limit)
        return [row_to_event(r) for r in rows]

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        validate_query(query)
        tenant = self._tenant()
        self._backend("query")
        with self._lock:
            rows = self._index.read_all(tenant, query.from_position, None)
        return query_rows(rows, query)

    async def count(self, query: EventQuery) -> int:
        """How many events `query` would return (the reference: it runs the query)."""
        return len(await self.query(query))

    async def aclose(self) -> None:
        """Stop every subscription; idempotent."""
        await self._subscriptions.close_all()
