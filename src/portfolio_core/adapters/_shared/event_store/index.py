"""The in-process index of streams and the global log (`EventIndex`): the memory
adapter is this index. The file adapter keeps its index on disk instead, and shares only the
row type (`IndexedRow`) and its conversion to a `RecordedEvent`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from portfolio_core.adapters._shared.event_store.rules import (
    check_expected,
    idempotent_replay,
    matches,
)
from portfolio_core.adapters._shared.event_store.validation import (
    PORT,
    EncodedEvent,
    decode,
    loads,
)
from portfolio_core.ports.errors import NotFoundError
from portfolio_core.ports.event_store import EventQuery, ExpectedVersion, RecordedEvent


@dataclass(slots=True)
class IndexedRow:
    """One stored event: its encoded body and where it sits."""

    event: EncodedEvent
    stream: str
    version: int
    position: int
    recorded_at: int  # microseconds since the epoch


@dataclass(slots=True)
class _Partition:
    rows: list[IndexedRow] = field(default_factory=list)
    streams: dict[str, list[int]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    last_time: int = 0


def row_to_event(row: IndexedRow) -> RecordedEvent:
    e = row.event
    return RecordedEvent(
        id=e.id,
        stream=row.stream,
        type=e.type,
        data=loads(e.data),
        metadata=loads(e.metadata),
        version=row.version,
        position=row.position,
        recorded_at=datetime.fromtimestamp(row.recorded_at / 1_000_000, UTC),
        correlation_id=e.correlation_id,
        causation_id=e.causation_id,
    )


def rows_to_events(rows: Iterable[IndexedRow]) -> list[RecordedEvent]:
    """`row_to_event` of each row, in bulk: the bodies decoded with
    [decode][portfolio_core.adapters._shared.event_store.validation.decode] (the empty object,
    the usual metadata, without the parser), and one ``datetime`` per run of consecutive rows
    with the same commit time (the events of one append share it). Raises what `row_to_event`
    raises for a body that is not JSON."""
    out: list[RecordedEvent] = []
    append = out.append
    last_at = -1
    last_time = datetime.fromtimestamp(0, UTC)
    for row in rows:
        e = row.event
        data, metadata, at = e.data, e.metadata, row.recorded_at
        if at != last_at:
            last_time = datetime.fromtimestamp(at / 1_000_000, UTC)
            last_at = at
        append(
            RecordedEvent(
                e.id,
                row.stream,
                e.type,
                {} if data == "{}" else decode(data),
                {} if metadata == "{}" else decode(metadata),
                row.version,
                row.position,
                last_time,
                e.correlation_id,
                e.causation_id,
            )
        )
    return out


class EventIndex:
    """Streams and the global log of each partition, in process (not thread-safe: callers
    hold their own lock). The memory adapter is this index. Positions are gapless per
    partition."""

    def __init__(self) -> None:
        self._parts: dict[str, _Partition] = {}

    def _part(self, tenant: str) -> _Partition:
        part = self._parts.get(tenant)
        if part is None:
            part = self._parts[tenant] = _Partition()
        return part

    def plan(
        self,
        tenant: str,
        stream: str,
        batch: Sequence[EncodedEvent],
        expected: ExpectedVersion,
        wall_clock: Callable[[], float] = time.time,
    ) -> list[IndexedRow] | tuple[int, tuple[int, ...]]:
        """The rows an append would add, or the original result of an exact retry.

        ``recorded_at`` is ``wall_clock()`` (seconds since the epoch), or the partition's last
        time when the clock has gone back. Raises WrongExpectedVersionError / ConflictError
        and changes nothing.
        """
        part = self._part(tenant)
        if any(e.id in part.ids for e in batch):
            stored: list[tuple[str, int, int] | None] = []
            for e in batch:
                i = part.ids.get(e.id)
                r = None if i is None else part.rows[i]
                stored.append(None if r is None else (r.stream, r.version, r.position))
            replay = idempotent_replay(stream, batch, expected, stored)
            if replay is not None:
                return replay
        current = len(part.streams.get(stream, ()))
        check_expected(stream, expected, current)
        now = max(int(wall_clock() * 1_000_000), part.last_time)
        start = len(part.rows)
        return [
            IndexedRow(e, stream, current + k + 1, start + k + 1, now) for k, e in enumerate(batch)
        ]

    def add(self, tenant: str, rows: Sequence[IndexedRow]) -> None:
        """Store planned (or recovered) rows; positions must continue the partition's log."""
        part = self._part(tenant)
        for row in rows:
            index = len(part.rows)
            if row.position != index + 1:
                raise ValueError(f"position {row.position} does not follow {index}")
            part.rows.append(row)
            part.ids[row.event.id] = index
            part.streams.setdefault(row.stream, []).append(index)
            part.last_time = max(part.last_time, row.recorded_at)

    def read(
        self, tenant: str, stream: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[IndexedRow]:
        part = self._part(tenant)
        indices = part.streams.get(stream)
        if indices is None:
            raise NotFoundError(f"no stream {stream!r}", key=stream, port=PORT)
        if not backwards:
            chosen = indices[max(from_version, 1) - 1 :]
        else:
            top = len(indices) if from_version == 0 else min(from_version, len(indices))
            chosen = indices[:top][::-1]
        if limit is not None:
            chosen = chosen[:limit]
        return [part.rows[i] for i in chosen]

    def read_all(self, tenant: str, from_position: int, limit: int | None) -> list[IndexedRow]:
        part = self._part(tenant)
        end = None if limit is None else from_position - 1 + limit
        return part.rows[from_position - 1 : end]


def query_rows(rows: Sequence[IndexedRow], query: EventQuery) -> list[RecordedEvent]:
    """Events of ``rows`` (a position-ordered slice) matching ``query``, up to its limit."""
    out: list[RecordedEvent] = []
    for row in reversed(rows) if query.backwards else rows:
        if query.limit is not None and len(out) >= query.limit:
            break
        if query.types and row.event.type not in query.types:
            continue
        if query.streams and row.stream not in query.streams:
            continue
        event = row_to_event(row)
        if matches(event, query):
            out.append(event)
    return out
