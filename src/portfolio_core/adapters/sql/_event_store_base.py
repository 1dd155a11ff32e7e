"""What the SQL event stores share: rows read back as events, the read and query paths,
the tenant partition and the subscriptions (`SQLEventStoreBase`).

Both stores (`.sqlite_event_store`, `.postgres_event_store`) use one table
(``_event_schema.event_table``, created on ``start``), partitioned by a ``tenant`` column
('' unless ``tenant_scoped``). Global positions are assigned by the writer as
``max(position) + 1`` *while holding the partition's write lock*, and the lock is held until
commit: on SQLite the database write lock (``BEGIN IMMEDIATE``), on PostgreSQL a
transaction-scoped advisory lock per table and tenant. Commits therefore happen in position
order, so a reader tailing ``read_all`` can never skip an event that commits after it read
past (the bigserial visibility bug cannot happen), and positions have no gaps (a rolled back
append assigns nothing). See docs/decisions/0008-event-store-positions.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from portfolio_core.adapters._shared.event_store.rules import (
    idempotent_replay,
    matches,
)
from portfolio_core.adapters._shared.event_store.subscriptions import (
    SubscriptionSet,
    Wakeup,
)
from portfolio_core.adapters._shared.event_store.validation import (
    EncodedEvent,
    decode,
    encode_batch,
    validate_expected,
    validate_position,
    validate_query,
    validate_read_args,
    validate_stream,
    validate_subscribe,
)
from portfolio_core.adapters.sql._event_schema import COLUMNS, build_query, check_name
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import CorruptDataError, NotFoundError
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

PORT = "EventStore"
Row = tuple[Any, ...]

_MAX_POSITION = 2**63 - 1


def load_json(data: str | bytes) -> Any:
    """psycopg's ``jsonb`` loader: UTF-8 bytes decoded without ``json.loads``' encoding
    sniffing, and the empty object (the usual metadata) without the parser."""
    if isinstance(data, str):
        return {} if data == "{}" else decode(data)
    return {} if data == b"{}" else decode(data.decode())


def rows_to_events(rows: Sequence[Row]) -> list[RecordedEvent]:
    """The rows (in ``COLUMNS`` order) as events; CorruptDataError when one cannot be read
    (a damaged database).

    SQLite hands JSON over as text (decoded here; the empty object, the usual metadata,
    without the parser), psycopg hands ``jsonb`` over already decoded. The events of one
    append share their commit time, so its conversion to a datetime is reused while
    consecutive rows have the same one; that cache lives in this call only, so no state is
    shared between calls or threads."""
    out: list[RecordedEvent] = []
    append = out.append
    last_at: Any = None
    last_time = datetime.fromtimestamp(0, UTC)
    try:
        for row in rows:
            (_, position, stream, version, event_id, type_, data, metadata, corr, caus, at) = row
            if data.__class__ is str:
                data = {} if data == "{}" else decode(data)
            if metadata.__class__ is str:
                metadata = {} if metadata == "{}" else decode(metadata)
            if at != last_at or last_at is None:
                last_time = datetime.fromtimestamp(at / 1_000_000, UTC)
                last_at = at
            append(
                RecordedEvent(
                    event_id,
                    stream,
                    type_,
                    data,
                    metadata,
                    version,
                    position,
                    last_time,
                    corr,
                    caus,
                )
            )
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise CorruptDataError(
            f"event store: a stored event cannot be read ({type(exc).__name__}); "
            "the database may be damaged",
            port=PORT,
        ) from exc
    return out


def read_sql(qualified: str, ph: str, direction: Direction, limit: int | None) -> str:
    if direction is Direction.FORWARDS:
        sql = (
            f"SELECT {COLUMNS} FROM {qualified} WHERE tenant = {ph} AND stream = {ph} "
            f"AND version >= {ph} ORDER BY version"
        )
    else:
        sql = (
            f"SELECT {COLUMNS} FROM {qualified} WHERE tenant = {ph} AND stream = {ph} "
            f"AND version <= {ph} ORDER BY version DESC"
        )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


_VERSION = 3
"""Index of ``version`` in ``COLUMNS``; ``event_id`` follows it."""
_EVENT_ID = 4


def read_or_exists_sql(qualified: str, ph: str, direction: Direction, limit: int | None) -> str:
    """The page of `read_sql` plus, when the stream exists, one marker row (every
    column NULL), in one statement -- one snapshot. Parameters: tenant, stream, start,
    tenant, stream."""
    nulls = ", ".join("NULL" for _ in COLUMNS.split(","))
    return (
        f"SELECT * FROM ({read_sql(qualified, ph, direction, limit)}) AS page UNION ALL "
        f"SELECT {nulls} WHERE EXISTS (SELECT 1 FROM {qualified} WHERE tenant = {ph} "
        f"AND stream = {ph})"
    )


class SQLEventStoreBase(ABC):
    """What both SQL stores share: validation, tenant partition, queries, subscriptions."""

    capabilities = declare(
        EventStoreCapability.SUBSCRIBE,
        EventStoreCapability.QUERY,
        EventStoreCapability.PERSISTENT,
        EventStoreCapability.SHARED,
        EventStoreCapability.GAPLESS,
        EventStoreCapability.TENANT_SCOPED,
        EventStoreCapability.COUNT,
    )
    _ph: ClassVar[str]
    _postgres: ClassVar[bool]

    def __init__(
        self,
        *,
        table: str,
        tenant_scoped: bool,
        max_event_bytes: int,
        subscription_batch: int,
        poll_interval: float,
    ) -> None:
        self.table = check_name(table, "table")
        self.tenant_scoped = tenant_scoped
        self.max_event_bytes = max_event_bytes
        self._wakeup = Wakeup()
        self._subscriptions = SubscriptionSet(
            self._wakeup, poll_interval=poll_interval, batch_size=subscription_batch
        )

    @property
    def _qualified(self) -> str:
        return self.table

    def _tenant(self) -> str:
        return require_tenant().tenant_id if self.tenant_scoped else ""

    @abstractmethod
    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """Run a read query; each store does it with its own driver."""

    @abstractmethod
    async def _append_rows(
        self, tenant: str, stream: str, batch: list[EncodedEvent], expected: ExpectedVersion
    ) -> tuple[int, tuple[int, ...]]:
        """Write one batch under the position lock; returns the version and positions."""

    async def _replay(
        self, tenant: str, stream: str, batch: list[EncodedEvent], expected: ExpectedVersion
    ) -> tuple[int, tuple[int, ...]] | None:
        ph = self._ph
        ids = [e.id for e in batch]
        rows = await self._fetch(
            f"SELECT event_id, stream, version, position FROM {self._qualified} "
            f"WHERE tenant = {ph} AND event_id IN ({', '.join(ph for _ in ids)})",
            [tenant, *ids],
        )
        found = {r[0]: (r[1], r[2], r[3]) for r in rows}
        return idempotent_replay(stream, batch, expected, [found.get(i) for i in ids])

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        expected = validate_expected(expected_version)
        batch = encode_batch(stream, events, self.max_event_bytes)
        tenant = self._tenant()
        version, positions = await self._append_rows(tenant, stream, batch, expected)
        self._wakeup.notify()
        return AppendResult(stream, version, positions)

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
        tenant = self._tenant()
        start = from_version
        if direction is Direction.BACKWARDS and from_version == 0:
            start = 2**31 - 1
        rows = await self._fetch(
            read_sql(self._qualified, self._ph, direction, limit), [tenant, stream, start]
        )
        if not rows:
            # Nothing: no such stream, or nothing from ``start``. Ask both again in one
            # statement, so that the answer is one moment's (an append may have created the
            # stream since): never [] for a stream that exists and has events from start.
            rows = await self._fetch(
                read_or_exists_sql(self._qualified, self._ph, direction, limit),
                [tenant, stream, start, tenant, stream],
            )
            if not rows:
                raise NotFoundError(f"no stream {stream!r}", key=stream, port=PORT)
            rows = sorted(
                (r for r in rows if r[_EVENT_ID] is not None),
                key=lambda r: r[_VERSION],
                reverse=direction is Direction.BACKWARDS,
            )
        return rows_to_events(rows)

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        validate_position(from_position, limit)
        tenant = self._tenant()
        ph = self._ph
        sql = f"SELECT {COLUMNS} FROM {self._qualified} WHERE tenant = {ph} AND position >= {ph} "
        params: list[Any] = [tenant, from_position]
        if limit is not None:
            # Positions are gapless, so a page of ``limit`` events is exactly the positions
            # [from, from + limit): a bounded range scan on the primary key, whatever the
            # planner believes about the table, and one statement text for every page size.
            sql += f"AND position < {ph} "
            params.append(min(from_position + limit, _MAX_POSITION))
        sql += "ORDER BY position"
        return rows_to_events(await self._fetch(sql, params))

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        validate_query(query)
        tenant = self._tenant()
        if query.limit == 0:
            return []
        positions = await self._position_bounds(tenant, query)
        sql, params, exact = build_query(
            self._qualified, tenant, query, postgres=self._postgres, positions=positions
        )
        events = rows_to_events(await self._fetch(sql, params))
        if exact:
            return events
        out = [e for e in events if matches(e, query)]
        return out if query.limit is None else out[: query.limit]

    async def count(self, query: EventQuery) -> int:
        """How many events `query` would return, counted by the database (``SELECT
        count(*)`` over the same statement) unless a ``data``/``metadata`` equality filter
        needs the reference matcher: then the matches are read and counted."""
        validate_query(query)
        tenant = self._tenant()
        if query.limit == 0:
            return 0
        positions = await self._position_bounds(tenant, query)
        sql, params, exact = build_query(
            self._qualified, tenant, query, postgres=self._postgres, positions=positions
        )
        if not exact:
            return len(await self.query(query))
        rows = await self._fetch(f"SELECT count(*) FROM ({sql}) AS matches", params)
        return int(rows[0][0])

    async def _position_bounds(
        self, tenant: str, query: EventQuery
    ) -> tuple[int, int | None] | None:
        """A position range holding every match of ``query``, when the store can tell one
        cheaply; None means "scan from ``from_position``"."""
        return None

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        validate_subscribe(stream, filter, from_position)
        self._tenant()  # fail closed now, not in the background task
        await self._before_subscribe()
        return self._subscriptions.open(
            self.query,
            handler,
            stream=stream,
            from_position=from_position,
            filter=filter,
            on_error=on_error,
        )

    async def _before_subscribe(self) -> None:
        return None

    async def unsubscribe(self, subscription: Subscription) -> None:
        await self._subscriptions.close(subscription)

    async def _stop_subscriptions(self) -> None:
        await self._subscriptions.close_all()
