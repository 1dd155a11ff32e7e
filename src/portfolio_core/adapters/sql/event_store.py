"""EventStore on SQL: SQLite (the embedded default) and PostgreSQL (psycopg 3).

Both use one table (``_event_schema.event_table``, created on `start`), partitioned by a
``tenant`` column ('' unless ``tenant_scoped``). Global positions are assigned by the writer
as ``max(position) + 1`` *while holding the partition's write lock*, and the lock is held
until commit: on SQLite the database write lock (``BEGIN IMMEDIATE``), on PostgreSQL a
transaction-scoped advisory lock per table and tenant. Commits therefore happen in position
order, so a reader tailing ``read_all`` can never skip an event that commits after it read
past (the bigserial visibility bug cannot happen), and positions have no gaps (a rolled back
append assigns nothing). See docs/decisions/0008-event-store-positions.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from json.scanner import make_scanner
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.event_store import (
    DEFAULT_MAX_EVENT_BYTES,
    EncodedEvent,
    SubscriptionSet,
    Wakeup,
    check_expected,
    encode_batch,
    idempotent_replay,
    matches,
    validate_expected,
    validate_position,
    validate_query,
    validate_read_args,
    validate_stream,
    validate_subscribe,
)
from portfolio_core.adapters.sql._event_schema import (
    COLUMNS,
    POSTGRES,
    SQLITE,
    build_query,
    check_name,
    ddl,
    event_table,
    micros,
)
from portfolio_core.adapters.sql._integrity import (
    DAMAGED_TEXT,
    IntegrityCheck,
    check_statement,
    refuse_damaged,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import (
    ConflictError,
    CorruptDataError,
    NotFoundError,
    UnavailableError,
    WrongExpectedVersionError,
)
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

__all__ = [
    "PostgresEventStore",
    "PostgresEventStoreConfig",
    "SQLiteEventStore",
    "SQLiteEventStoreConfig",
]

T = TypeVar("T")
PORT = "EventStore"
Row = tuple[Any, ...]
_QueuedAppend = tuple[str, dict[str, Any], "asyncio.Future[list[Row]] | None"]
"""A PostgreSQL append waiting for the writer: condition, parameters, the caller's future
(None for the append its caller sends itself)."""


_DECODER = json.JSONDecoder()
_scan = make_scanner(_DECODER)  # type: ignore[arg-type]
_MAX_POSITION = 2**63 - 1


def _decode(text: str) -> Any:
    """The value of the JSON ``text``; raises what ``JSONDecoder().decode`` raises."""
    try:  # the scanner alone, without decode's two whitespace matches and calls around it
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        return _DECODER.decode(text)  # leading whitespace, or the error to raise
    return value if end == len(text) else _DECODER.decode(text)


_last_recorded = (-1, datetime.fromtimestamp(0, UTC))
"""The last commit time converted (microseconds, datetime): events of one append share it."""


def _load_json(data: str | bytes) -> Any:
    if isinstance(data, str):
        return {} if data == "{}" else _decode(data)
    return {} if data == b"{}" else _decode(data.decode())


def _to_event(row: Row) -> RecordedEvent:
    """One row (in ``COLUMNS`` order) as a RecordedEvent. SQLite hands JSON over as text
    (decoded here; the empty object, the usual metadata, without the parser), psycopg hands
    ``jsonb`` over already decoded."""
    (_, position, stream, version, event_id, type_, data, metadata, corr, caus, at) = row
    if data.__class__ is str:
        data = {} if data == "{}" else _decode(data)
    if metadata.__class__ is str:
        metadata = {} if metadata == "{}" else _decode(metadata)
    global _last_recorded
    recorded = _last_recorded
    if recorded[0] != at:
        _last_recorded = recorded = (at, datetime.fromtimestamp(at / 1_000_000, UTC))
    return RecordedEvent(
        event_id, stream, type_, data, metadata, version, position, recorded[1], corr, caus
    )


def _events(rows: Sequence[Row]) -> list[RecordedEvent]:
    """The rows as events; CorruptDataError when one cannot be (a damaged database)."""
    try:
        return [_to_event(r) for r in rows]
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise CorruptDataError(
            f"event store: a stored event cannot be read ({type(exc).__name__}); "
            "the database may be damaged",
            port=PORT,
        ) from exc


def _read_sql(qualified: str, ph: str, direction: Direction, limit: int | None) -> str:
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


class _SQLBase(ABC):
    """What both SQL stores share: validation, tenant partition, queries, subscriptions."""

    capabilities = declare(
        EventStoreCapability.SUBSCRIBE,
        EventStoreCapability.QUERY,
        EventStoreCapability.PERSISTENT,
        EventStoreCapability.SHARED,
        EventStoreCapability.GAPLESS,
        EventStoreCapability.TENANT_SCOPED,
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
            _read_sql(self._qualified, self._ph, direction, limit), [tenant, stream, start]
        )
        if not rows:
            exists = await self._fetch(
                f"SELECT 1 FROM {self._qualified} WHERE tenant = {self._ph} "
                f"AND stream = {self._ph} LIMIT 1",
                [tenant, stream],
            )
            if not exists:
                raise NotFoundError(f"no stream {stream!r}", key=stream, port=PORT)
        return _events(rows)

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
        return _events(await self._fetch(sql, params))

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        validate_query(query)
        tenant = self._tenant()
        if query.limit == 0:
            return []
        positions = await self._position_bounds(tenant, query)
        sql, params, exact = build_query(
            self._qualified, tenant, query, postgres=self._postgres, positions=positions
        )
        events = _events(await self._fetch(sql, params))
        if exact:
            return events
        out = [e for e in events if matches(e, query)]
        return out if query.limit is None else out[: query.limit]

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


# ------------------------------------------------------------------------------- SQLite

_SOLO_LIMIT = 8
"""Writer groups of one append in a row after which appends go inline again."""
_COMPANY_WINDOW = 0.005
"""Seconds: an append by another task this soon after the last one means concurrency."""
_GROUP_EVENTS = 2048
"""At most this many events are committed in one group (at least one append)."""


class _PendingAppend:
    """One append waiting to be written with its group, and what the writer decided for it."""

    __slots__ = ("batch", "error", "expected", "future", "loop", "result", "stream", "tenant")

    def __init__(
        self,
        tenant: str,
        stream: str,
        batch: list[EncodedEvent],
        expected: ExpectedVersion,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.tenant = tenant
        self.stream = stream
        self.batch = batch
        self.expected = expected
        self.loop = loop
        self.future: asyncio.Future[tuple[int, tuple[int, ...]] | None] = loop.create_future()
        self.result: tuple[int, tuple[int, ...]] | None = None
        self.error: BaseException | None = None

    def settle(self) -> None:
        """Hand the outcome to the waiting task (called on its event loop)."""
        if self.future.done():  # the caller was cancelled; the outcome stands regardless
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)


def _busy(exc: BaseException) -> bool:
    """Whether ``exc`` says another connection holds the database lock."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _unavailable(exc: BaseException) -> BaseException:
    """The port error for a driver error raised while writing; others pass unchanged."""
    if isinstance(exc, sqlite3.OperationalError):
        return UnavailableError(f"SQLite event store: {exc}", port=PORT)
    if isinstance(exc, sqlite3.DatabaseError):
        return UnavailableError(f"SQLite event store failed: {exc}", port=PORT)
    return exc


class SQLiteEventStoreConfig(BaseModel):
    """Configuration of `SQLiteEventStore` (``sqlite`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="database file, or ':memory:'")
    table: str = "pc_events"
    tenant_scoped: bool = False
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, gt=0)
    synchronous: Literal["full", "normal"] = "full"
    busy_timeout: float = Field(30.0, gt=0)
    inline: bool = True
    indexed_fields: list[str] = Field(default_factory=list)
    subscription_batch: int = Field(256, gt=0)
    poll_interval: float = Field(0.05, gt=0)
    integrity_check: IntegrityCheck = "full"


class SQLiteEventStore(_SQLBase):
    """Event store in one SQLite file (WAL journal, ``synchronous=FULL`` by default).

    Several processes may share the file: appends serialise on SQLite's write lock
    (``BEGIN IMMEDIATE``, waiting up to ``busy_timeout`` seconds, then UnavailableError).
    With ``inline=True`` (the default) a call first runs on the event loop's thread on a
    connection that never waits: when the database is free (the common case) it costs no
    thread hop, at the price of blocking the loop for the statement itself (including the
    commit's fsync). If another writer holds the lock, the call moves to the store's worker
    thread, which waits up to ``busy_timeout`` without blocking the loop. ``inline=False``
    runs every call on the worker thread.

    Group commit: when several tasks (or threads) of this process append concurrently, the
    appends go to the worker thread, and every append waiting when it is free is written in
    one transaction and one durable commit (each append keeps its own expected-version
    check, id check and atomicity, through a savepoint). Each call still returns only after
    the commit that holds its events, so durability and ordering are those of one append per
    commit; throughput with N concurrent writers is no longer bounded by one ``fsync`` per
    append. The store switches to this path when a second task appends within a few
    milliseconds of another, and back to inline calls after a run of appends that found no
    company. See docs/decisions/0014-event-store-group-commit.md.

    Subscribers are woken at once by appends in this process and poll every
    ``poll_interval`` seconds for appends by other processes.

    Opening checks the file (``integrity_check``: ``full``, ``quick`` or ``off``): a
    damaged database raises CorruptDataError instead of answering reads short.
    """

    config_model: ClassVar[type[BaseModel]] = SQLiteEventStoreConfig
    _ph = "?"
    _postgres = False

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = "pc_events",
        tenant_scoped: bool = False,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        synchronous: Literal["full", "normal"] = "full",
        busy_timeout: float = 30.0,
        inline: bool = True,
        indexed_fields: Sequence[str] = (),
        subscription_batch: int = 256,
        poll_interval: float = 0.05,
        integrity_check: IntegrityCheck = "full",
    ) -> None:
        super().__init__(
            table=table,
            tenant_scoped=tenant_scoped,
            max_event_bytes=max_event_bytes,
            subscription_batch=subscription_batch,
            poll_interval=poll_interval,
        )
        self.path = str(path)
        self._integrity = check_statement(integrity_check)
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._indexed = [check_name(f, "indexed_fields") for f in indexed_fields]
        self._inline = inline
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._fast: sqlite3.Connection | None = None
        self._fast_lock = threading.Lock()
        self._last_time = 0
        # Group commit (see the class docstring): appends waiting for the writer, whether
        # the writer is running, and the heuristic choosing inline calls or the writer.
        self._queue_lock = threading.Lock()
        self._queue: list[_PendingAppend] = []
        self._writer_busy = False
        self._solo_groups = _SOLO_LIMIT
        self._last_task = 0
        self._last_append = 0.0
        self._insert = (
            f"INSERT INTO {self.table} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._heads = (
            f"SELECT (SELECT max(version) FROM {self.table} WHERE tenant = ? AND stream = ?), "
            f"(SELECT position FROM {self.table} WHERE tenant = ? ORDER BY position DESC "
            "LIMIT 1), "
            f"(SELECT recorded_at FROM {self.table} WHERE tenant = ? ORDER BY position DESC "
            "LIMIT 1)"
        )
        self._recorded_at = (
            f"SELECT recorded_at FROM {self.table} WHERE tenant = ? AND position = ?"
        )

    @classmethod
    def from_config(cls, config: SQLiteEventStoreConfig) -> Self:
        return cls(**config.model_dump())

    def __repr__(self) -> str:
        return f"SQLiteEventStore(path={self.path!r}, table={self.table!r})"

    # -- worker thread ------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)``: inline on a never-waiting connection when the database
        is free (no thread hop), else on the worker thread's patient connection."""
        if self._executor is None:
            await self.start()
        assert self._executor is not None
        try:
            if self._fast is not None and self._fast_lock.acquire(blocking=False):
                try:
                    return fn(self._fast, *args)
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
                finally:
                    self._fast_lock.release()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn, self._conn, *args)
        except sqlite3.DatabaseError as exc:
            raise _unavailable(exc) from exc
        except DAMAGED_TEXT as exc:
            raise CorruptDataError(
                f"SQLite event store {self.path!r} holds text that is not UTF-8: it is damaged",
                location=self.path,
                port=PORT,
            ) from exc

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
        conn.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        return conn

    def _open(self) -> None:
        conn = self._connect(self._busy_timeout)
        try:
            if self.path != ":memory:" and self._integrity is not None:
                refuse_damaged(conn.execute(self._integrity), self.path, PORT)
                conn.execute("PRAGMA journal_mode=WAL")
            table = event_table(self.table, postgres=False)
            conn.execute("BEGIN IMMEDIATE")
            for statement in ddl(table, SQLITE, self._indexed):
                conn.execute(statement)
            conn.execute("COMMIT")
            if self._inline and self.path != ":memory:":
                self._fast = self._connect(0.0)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @staticmethod
    def _select(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Row]:
        return conn.execute(sql, params).fetchall()

    def _now(self) -> int:
        """Commit time in microseconds, never behind an earlier append of this store (call
        with the write lock held)."""
        now = max(int(time.time() * 1_000_000), self._last_time)
        self._last_time = now
        return now

    def _insert_batch(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        stream: str,
        batch: list[EncodedEvent],
        expected: ExpectedVersion,
        now: int,
    ) -> tuple[int, tuple[int, ...]] | None:
        """Check the expected version and insert, inside an open write transaction; None
        (and nothing inserted) means "check ids and version". May raise IntegrityError
        (a stored event id) after inserting some rows: the caller rolls back."""
        current, last, last_at = conn.execute(
            self._heads, (tenant, stream, tenant, tenant)
        ).fetchone()
        current = current or 0
        last = last or 0
        try:
            check_expected(stream, expected, current)
        except WrongExpectedVersionError:
            return None
        if last_at is not None and last_at > now:  # another process's clock ran ahead
            now = last_at
        conn.executemany(
            self._insert,
            [
                (
                    tenant,
                    last + i + 1,
                    stream,
                    current + i + 1,
                    e.id,
                    e.type,
                    e.data,
                    e.metadata,
                    e.correlation_id,
                    e.causation_id,
                    now,
                )
                for i, e in enumerate(batch)
            ],
        )
        n = len(batch)
        return current + n, tuple(range(last + 1, last + n + 1))

    def _write(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        stream: str,
        batch: list[EncodedEvent],
        expected: ExpectedVersion,
    ) -> tuple[int, tuple[int, ...]] | None:
        """Append inside one IMMEDIATE transaction; None means "check ids and version"."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = self._insert_batch(conn, tenant, stream, batch, expected, self._now())
            conn.execute("COMMIT" if done is not None else "ROLLBACK")
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            return None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return done

    def _write_group(
        self, conn: sqlite3.Connection, group: list[_PendingAppend], *, busy_raises: bool
    ) -> None:
        """Write every append of ``group`` in one transaction and one commit, each under
        its own savepoint so a refused append leaves the others intact. Sets each
        append's ``result`` (None: "check ids and version") or, if the transaction itself
        fails, the same ``error`` on all (then nothing is written). With ``busy_raises``,
        a database locked by another connection raises OperationalError instead, and
        nothing is written or set."""
        try:
            if len(group) == 1:
                one = group[0]
                one.result = self._write(conn, one.tenant, one.stream, one.batch, one.expected)
                return
            conn.execute("BEGIN IMMEDIATE")
            now = self._now()
            for p in group:
                conn.execute("SAVEPOINT pc_append")
                try:
                    p.result = self._insert_batch(
                        conn, p.tenant, p.stream, p.batch, p.expected, now
                    )
                except sqlite3.IntegrityError:
                    p.result = None
                except (ValueError, TypeError, sqlite3.InterfaceError) as exc:
                    p.result, p.error = None, exc  # this append's values cannot be bound
                if p.result is None:
                    conn.execute("ROLLBACK TO pc_append")
                conn.execute("RELEASE pc_append")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if busy_raises and _busy(exc):
                raise
            error = _unavailable(exc)
            for p in group:
                p.result, p.error = None, error

    def _take_group(self) -> list[_PendingAppend]:
        """The next group of waiting appends (oldest first); when none is waiting, the
        writer role is given up in the same step, so a newcomer knows to take it."""
        with self._queue_lock:
            group: list[_PendingAppend] = []
            events = 0
            while self._queue and (not group or events < _GROUP_EVENTS):
                pending = self._queue.pop(0)
                group.append(pending)
                events += len(pending.batch)
            if not group:
                self._writer_busy = False
        if group:
            self._solo_groups = self._solo_groups + 1 if len(group) == 1 else 0
        return group

    @staticmethod
    def _settle(group: list[_PendingAppend]) -> None:
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for pending in group:
            if pending.loop is here:
                pending.settle()
            else:
                with contextlib.suppress(RuntimeError):  # that caller's loop is closed
                    pending.loop.call_soon_threadsafe(pending.settle)

    def _hand_over(self, group: list[_PendingAppend]) -> None:
        """Give ``group`` (first) and the rest of the queue to the writer thread."""
        with self._queue_lock:
            self._queue[:0] = group
        executor = self._executor
        if executor is None:
            self._fail_queued()
        else:
            executor.submit(self._drain)

    def _fail_queued(self) -> None:
        with self._queue_lock:
            left, self._queue, self._writer_busy = self._queue, [], False
        for pending in left:
            pending.error = UnavailableError("the SQLite event store was closed", port=PORT)
        self._settle(left)

    def _lead(self) -> None:
        """Write the waiting appends on this thread's never-waiting connection, group by
        group, until none is left; if the database is busy (another process, or another
        thread's group), hand the rest to the writer thread, which waits for it."""
        while group := self._take_group():
            if not self._fast_lock.acquire(blocking=False):
                self._hand_over(group)
                return
            try:
                conn = self._fast
                if conn is None:
                    self._hand_over(group)
                    return
                try:
                    self._write_group(conn, group, busy_raises=True)
                except sqlite3.Error:
                    self._hand_over(group)
                    return
            finally:
                self._fast_lock.release()
            self._settle(group)

    def _drain(self) -> None:
        """Writer thread: commit one group of waiting appends on the patient connection,
        hand out the outcomes, and queue another round if more are waiting (one round per
        job, so reads queued on this thread are not starved by a stream of appends)."""
        group = self._take_group()
        if not group:
            return
        try:
            conn = self._conn
            if conn is None:
                error = UnavailableError("the SQLite event store is closed", port=PORT)
                for pending in group:
                    pending.error = error
            else:
                self._write_group(conn, group, busy_raises=False)
        finally:
            self._settle(group)
            executor = self._executor
            if executor is None:
                self._fail_queued()
            else:
                executor.submit(self._drain)

    async def _append_grouped(
        self,
        tenant: str,
        stream: str,
        batch: list[EncodedEvent],
        expected: ExpectedVersion,
        *,
        lead: bool,
    ) -> tuple[int, tuple[int, ...]] | None:
        """Queue the append and wait for the commit that holds it. The first append to
        find no writer at work becomes the writer: with ``lead`` it yields once, so the
        other tasks ready to append join its group, then writes the group on this thread;
        otherwise it starts the writer thread."""
        pending = _PendingAppend(tenant, stream, batch, expected, asyncio.get_running_loop())
        with self._queue_lock:
            self._queue.append(pending)
            first, self._writer_busy = not self._writer_busy, True
        if first:
            if lead:
                try:
                    await asyncio.sleep(0)
                finally:  # even if cancelled: the group must be written, and the role freed
                    self._lead()
            else:
                assert self._executor is not None
                self._executor.submit(self._drain)
        return await pending.future

    def _alone(self) -> bool:
        """Whether this append may run inline at once: no group is being written and no
        other task has appended moments ago."""
        task = asyncio.current_task()
        me = id(task) if task is not None else 0
        if me != self._last_task:
            if time.monotonic() - self._last_append < _COMPANY_WINDOW:
                self._solo_groups = 0
            self._last_task = me
        return self._solo_groups >= _SOLO_LIMIT and not self._writer_busy

    async def _write_append(
        self, tenant: str, stream: str, batch: list[EncodedEvent], expected: ExpectedVersion
    ) -> tuple[int, tuple[int, ...]] | None:
        if self._executor is None:
            await self.start()
        try:
            if self._fast is None:  # inline=False, or ':memory:'
                return await self._append_grouped(tenant, stream, batch, expected, lead=False)
            if not self._alone():
                return await self._append_grouped(tenant, stream, batch, expected, lead=True)
            if self._fast_lock.acquire(blocking=False):
                try:
                    return self._write(self._fast, tenant, stream, batch, expected)
                except sqlite3.Error as exc:
                    if not _busy(exc):
                        raise _unavailable(exc) from exc
                finally:
                    self._fast_lock.release()
            return await self._append_grouped(tenant, stream, batch, expected, lead=False)
        finally:
            self._last_append = time.monotonic()

    def _time_bounds(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        start: int,
        since: int | None,
        until: int | None,
    ) -> tuple[int, int | None] | None:
        """Positions ``[first, stop)`` recorded in ``[since, until)``, found by binary search
        on the primary key: positions are gapless and ``recorded_at`` never decreases along
        them, so the events of a time range are one run of positions. None if a position
        is unexpectedly missing (then the caller scans)."""
        row = conn.execute(
            f"SELECT position FROM {self.table} WHERE tenant = ? ORDER BY position DESC LIMIT 1",
            (tenant,),
        ).fetchone()
        end = (row[0] if row else 0) + 1  # one past the last position read here
        start = max(start, 1)

        def first_at(moment: int) -> int | None:
            """The first position in [start, end) recorded at or after ``moment``."""
            lo, hi = start, end
            while lo < hi:
                mid = (lo + hi) // 2
                found = conn.execute(self._recorded_at, (tenant, mid)).fetchone()
                if found is None:
                    return None
                if found[0] >= moment:
                    hi = mid
                else:
                    lo = mid + 1
            return lo

        first = start if since is None else first_at(since)
        stop = None if until is None else first_at(until)
        if first is None or (until is not None and stop is None):
            return None
        if stop is not None and stop == end:
            stop = None  # up to the end: events appended after this read may match too
        return first, stop

    async def _position_bounds(
        self, tenant: str, query: EventQuery
    ) -> tuple[int, int | None] | None:
        if query.since is None and query.until is None:
            return None
        since = None if query.since is None else micros(query.since)
        until = None if query.until is None else micros(query.until)
        return await self._call(self._time_bounds, tenant, query.from_position, since, until)

    def _version(self, conn: sqlite3.Connection, tenant: str, stream: str) -> int:
        row = conn.execute(
            f"SELECT max(version) FROM {self.table} WHERE tenant = ? AND stream = ?",
            (tenant, stream),
        ).fetchone()
        return int(row[0] or 0)

    # -- async API ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database and create the table and indexes if missing; idempotent."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(1, thread_name_prefix="pc-sqlite-events")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise UnavailableError(f"cannot open SQLite event store: {exc}", port=PORT) from exc
        except CorruptDataError:
            executor.shutdown(wait=False)
            raise
        except DAMAGED_TEXT as exc:
            executor.shutdown(wait=False)
            raise CorruptDataError(
                f"SQLite event store {self.path!r} holds text that is not UTF-8: it is damaged",
                location=self.path,
                port=PORT,
            ) from exc
        self._executor = executor

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return await self._call(self._select, sql, params)

    async def _append_rows(
        self, tenant: str, stream: str, batch: list[EncodedEvent], expected: ExpectedVersion
    ) -> tuple[int, tuple[int, ...]]:
        done = await self._write_append(tenant, stream, batch, expected)
        if done is not None:
            return done
        replay = await self._replay(tenant, stream, batch, expected)
        if replay is not None:
            return replay
        actual = await self._call(self._version, tenant, stream)
        check_expected(stream, expected, actual)
        raise ConflictError(f"append to {stream!r} conflicted with a concurrent writer", port=PORT)

    async def ping(self) -> None:
        await self._fetch("SELECT 1", ())

    async def aclose(self) -> None:
        """Stop subscriptions and close the database; idempotent."""
        await self._stop_subscriptions()
        executor, self._executor = self._executor, None
        if executor is None:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        with self._fast_lock:
            fast, self._fast = self._fast, None
            if fast is not None:
                fast.close()
        executor.shutdown(wait=True)
        self._fail_queued()  # appends queued after the writer's last round


# ---------------------------------------------------------------------------- PostgreSQL


_quote = json.encoder.encode_basestring


def _batch_json(batch: list[EncodedEvent]) -> str:
    """The batch as one JSON array of objects (id, type, data, metadata, corr, caus): one
    query parameter, unpacked by the server, instead of six arrays quoted client-side.
    ``data`` and ``metadata`` are embedded as the JSON text they already are."""
    return (
        "["
        + ",".join(
            '{"id":'
            + _quote(e.id)
            + ',"type":'
            + _quote(e.type)
            + ',"data":'
            + e.data
            + ',"metadata":'
            + e.metadata
            + ',"corr":'
            + ("null" if e.correlation_id is None else _quote(e.correlation_id))
            + ',"caus":'
            + ("null" if e.causation_id is None else _quote(e.causation_id))
            + "}"
            for e in batch
        )
        + "]"
    )


def _append_error(exc: Exception) -> Exception:
    """The error an append reports for ``exc``: the port's UnavailableError for a driver
    error (a lock wait that timed out said so), anything else unchanged (e.g. a value the
    driver cannot send)."""
    import psycopg

    if isinstance(exc, psycopg.errors.LockNotAvailable):
        error = UnavailableError("timed out waiting for the append lock", port=PORT)
    elif isinstance(exc, psycopg.Error):
        error = UnavailableError(f"PostgreSQL append failed: {exc}", port=PORT)
    else:
        return exc
    error.__cause__ = exc
    return error


class PostgresEventStoreConfig(BaseModel):
    """Configuration of `PostgresEventStore` (``postgres`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    table: str = "pc_events"
    db_schema: str | None = None
    tenant_scoped: bool = False
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, gt=0)
    pool_size: int = Field(4, gt=0)
    lock_timeout: float = Field(30.0, gt=0)
    subscription_batch: int = Field(256, gt=0)
    poll_interval: float = Field(1.0, gt=0)


class PostgresEventStore(_SQLBase):
    """Event store in PostgreSQL via psycopg 3 (async), shared by many processes.

    ``data`` and ``metadata`` are ``jsonb`` with GIN (``jsonb_path_ops``) indexes, so equality
    filters on any top-level field use an index. An append is one message and one round trip
    (BEGIN, advisory lock, one ``INSERT ... SELECT`` that checks the expected version, NOTIFY,
    COMMIT). Subscribers are woken by LISTEN/NOTIFY, with ``poll_interval`` as a fallback.
    One instance serves one event loop.
    """

    config_model: ClassVar[type[BaseModel]] = PostgresEventStoreConfig
    _ph = "%s"
    _postgres = True

    def __init__(
        self,
        url: str | SecretStr,
        *,
        table: str = "pc_events",
        db_schema: str | None = None,
        tenant_scoped: bool = False,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        pool_size: int = 4,
        lock_timeout: float = 30.0,
        subscription_batch: int = 256,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(
            table=table,
            tenant_scoped=tenant_scoped,
            max_event_bytes=max_event_bytes,
            subscription_batch=subscription_batch,
            poll_interval=poll_interval,
        )
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        self.db_schema = check_name(db_schema, "db_schema") if db_schema else None
        self._pool_size = pool_size
        self._lock_timeout = lock_timeout
        self._channel = f"{self.db_schema or ''}_{self.table}_events"[-63:]
        self._pool: asyncio.Queue[Any] | None = None
        self._conns: list[Any] = []
        self._listener: Any = None
        self._listen_task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        # Group commit: appends waiting for the writer task, the task, and the INSERT
        # texts of a group's members by (index in the group, expected-version condition).
        self._appends: list[_QueuedAppend] = []
        self._writing = False
        self._writer: asyncio.Task[None] | None = None
        self._many_cache: dict[tuple[int, str], str] = {}
        q = self._qualified
        self._insert_head = (
            f"INSERT INTO {q} ({COLUMNS}) "
            "SELECT %(tenant)s, m.p + u.o, %(stream)s, m.v + u.o, u.id, u.type, "
            "u.data, u.metadata, u.corr, u.caus, m.t "
            f"FROM (SELECT coalesce((SELECT max(position) FROM {q} WHERE tenant = %(tenant)s), 0)"
            " AS p, coalesce((SELECT max(version) FROM "
            f"{q} WHERE tenant = %(tenant)s AND stream = %(stream)s), 0) AS v, "
            # never behind the last event (another server's or session's clock): recorded_at
            # does not decrease along positions
            "greatest((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, "
            f"(SELECT recorded_at FROM {q} WHERE tenant = %(tenant)s ORDER BY position DESC "
            "LIMIT 1)) AS t) AS m, "
            "ROWS FROM (jsonb_to_recordset(%(batch)s::jsonb) AS (id text, type text, "
            "data jsonb, metadata jsonb, corr text, caus text)) WITH ORDINALITY "
            "AS u(id, type, data, metadata, corr, caus, o) WHERE "
        )

    @classmethod
    def from_config(cls, config: PostgresEventStoreConfig) -> Self:
        return cls(**config.model_dump())

    def __repr__(self) -> str:
        return f"PostgresEventStore(table={self._qualified!r}, url=**********)"

    @property
    def _qualified(self) -> str:
        return f"{self.db_schema}.{self.table}" if self.db_schema else self.table

    async def _connect(self, *, autocommit: bool = True) -> Any:
        import psycopg
        from psycopg.types.json import set_json_loads

        try:
            conn = await psycopg.AsyncConnection.connect(
                self._url.get_secret_value(), autocommit=autocommit
            )
        except psycopg.Error as exc:
            raise UnavailableError(
                f"cannot connect to PostgreSQL: {type(exc).__name__}", port=PORT
            ) from None
        # jsonb arrives as UTF-8 bytes: decode without json.loads' encoding sniffing, and
        # the empty object (the usual metadata) without the parser.
        set_json_loads(_load_json, conn)
        # Session-wide, once per connection: the append lock (and the DDL lock in start)
        # wait at most lock_timeout. Set here rather than with SET LOCAL in every append,
        # which cost a statement per append. The connections serve only this store.
        try:
            await conn.execute(f"SET lock_timeout = '{int(self._lock_timeout * 1000)}ms'")
            if not autocommit:
                await conn.commit()
        except psycopg.Error as exc:
            await conn.close()
            raise UnavailableError(
                f"cannot configure PostgreSQL connection: {type(exc).__name__}", port=PORT
            ) from None
        return conn

    async def start(self) -> None:
        """Connect and create the schema, table and indexes if missing; idempotent."""
        async with self._start_lock:
            if self._pool is not None:
                return
            import psycopg

            conn = await self._connect()
            try:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"pc-ddl:{self._qualified}",)
                    )
                    if self.db_schema:
                        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.db_schema}")
                    table = event_table(self.table, postgres=True, schema=self.db_schema)
                    for statement in ddl(table, POSTGRES):
                        await conn.execute(statement)
            except psycopg.Error as exc:
                await conn.close()
                raise UnavailableError(f"cannot create event table: {exc}", port=PORT) from exc
            pool: asyncio.Queue[Any] = asyncio.Queue()
            self._conns = [conn]
            pool.put_nowait(conn)
            for _ in range(self._pool_size - 1):
                extra = await self._connect()
                self._conns.append(extra)
                pool.put_nowait(extra)
            self._pool = pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> Any:
        if self._pool is None:
            await self.start()
        pool = self._pool
        assert pool is not None
        conn = await pool.get()
        try:
            if conn.closed or conn.broken:  # lost (server restart, network): connect again
                conn = await self._reconnect(conn)
            yield conn
        finally:
            pool.put_nowait(conn)

    async def _reconnect(self, dead: Any) -> Any:
        """A fresh connection in place of ``dead``; UnavailableError (keeping ``dead`` in the
        pool, to be replaced by a later call) while the server cannot be reached."""
        fresh = await self._connect()
        self._conns = [fresh if c is dead else c for c in self._conns]
        with contextlib.suppress(Exception):
            await dead.close()
        return fresh

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        import psycopg

        async with self._connection() as conn:
            try:
                cur = await conn.execute(sql, params)
                return list(await cur.fetchall())
            except psycopg.Error as exc:
                raise UnavailableError(f"PostgreSQL read failed: {exc}", port=PORT) from exc

    async def _append_rows(
        self, tenant: str, stream: str, batch: list[EncodedEvent], expected: ExpectedVersion
    ) -> tuple[int, tuple[int, ...]]:

        if expected is StreamState.ANY:
            cond = "TRUE"
        elif expected is StreamState.NO_STREAM:
            cond = "m.v = 0"
        elif expected is StreamState.STREAM_EXISTS:
            cond = "m.v > 0"
        else:
            cond = "m.v = %(expected)s"
        params = {
            "tenant": tenant,
            "stream": stream,
            "expected": expected if isinstance(expected, int) else 0,
            "batch": _batch_json(batch),
            "events": len(batch),
        }
        rows = await self._queue_append(cond, params)
        if rows:
            rows.sort()
            return rows[-1][1], tuple(r[0] for r in rows)
        replay = await self._replay(tenant, stream, batch, expected)
        if replay is not None:
            return replay
        found = await self._fetch(
            f"SELECT coalesce(max(version), 0) FROM {self._qualified} "
            "WHERE tenant = %s AND stream = %s",
            [tenant, stream],
        )
        check_expected(stream, expected, int(found[0][0]))
        raise ConflictError(f"append to {stream!r} conflicted with a concurrent writer", port=PORT)

    async def _send_append(self, conn: Any, cond: str, params: dict[str, Any]) -> list[Row]:
        """Lock, insert, notify and commit in one message and one round trip.

        The statements travel as one simple query (parameters bound client-side by
        psycopg's ClientCursor), so the server answers once: fewer wake-ups of the event
        loop than a pipeline of five statements. The lock is its own statement, so in READ
        COMMITTED the INSERT's snapshot is taken after it is granted and includes every
        earlier append. If any statement fails the server skips the rest (COMMIT
        included) and the open transaction is rolled back here.
        """
        import psycopg

        sql = (
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext(%(lock_key)s)); "
            + self._insert_head
            + cond
            + " RETURNING position, version; SELECT pg_notify(%(channel)s, %(tenant)s); COMMIT"
        )
        params = {**params, "lock_key": self._lock_key(params["tenant"]), "channel": self._channel}
        try:
            async with psycopg.AsyncClientCursor(conn) as cur:
                await cur.execute(sql, params)
                cur.nextset()  # BEGIN -> the lock
                cur.nextset()  # -> the INSERT's RETURNING rows
                return list(await cur.fetchall())
        finally:
            status = conn.info.transaction_status
            if status in (
                psycopg.pq.TransactionStatus.INTRANS,
                psycopg.pq.TransactionStatus.INERROR,
            ):
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("ROLLBACK")

    def _lock_key(self, tenant: str) -> str:
        return f"pc-events:{self._qualified}:{tenant}"

    # -- group commit --------------------------------------------------------------------

    async def _queue_append(self, cond: str, params: dict[str, Any]) -> list[Row]:
        """Send one append and return its RETURNING rows (empty: nothing written, "check
        ids and version"). With no append in flight it is sent at once by the caller;
        appends arriving meanwhile queue, and a writer task sends each queue as one group:
        one message, one transaction, one commit."""
        if not self._writing:
            self._writing = True
            try:
                outcome = (await self._send_group([(cond, params, None)]))[0]
            finally:
                if self._appends:
                    self._writer = asyncio.get_running_loop().create_task(self._write_groups())
                else:
                    self._writing = False
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        future: asyncio.Future[list[Row]] = asyncio.get_running_loop().create_future()
        self._appends.append((cond, params, future))
        return await future

    async def _write_groups(self) -> None:
        """The writer task: send the waiting appends group by group until none is left."""
        try:
            while self._appends:
                group: list[_QueuedAppend] = []
                events = 0
                while self._appends and (not group or events < _GROUP_EVENTS):
                    group.append(self._appends.pop(0))
                    events += group[-1][1]["events"]
                outcomes: list[list[Row] | BaseException]
                try:
                    outcomes = await self._send_group(group)
                except Exception as exc:  # e.g. the pool cannot connect: UnavailableError
                    outcomes = [exc] * len(group)
                except BaseException:  # the writer is cancelled: nobody may wait forever
                    group.extend(self._appends)
                    self._appends = []
                    error = UnavailableError("the append was cancelled with its writer", port=PORT)
                    for _, _, future in group:
                        if future is not None and not future.done():
                            future.set_exception(error)
                    raise
                for (_, _, future), outcome in zip(group, outcomes, strict=True):
                    if future is None or future.done():  # a cancelled caller: outcome stands
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._writing = False

    async def _send_group(self, group: list[_QueuedAppend]) -> list[list[Row] | BaseException]:
        """Each append's rows or error. One append goes alone; several go in one message
        (see `_send_many`). If that message fails for a reason that may belong to
        one append, each is sent alone so only that one fails."""
        import psycopg

        async with self._connection() as conn:
            if len(group) > 1:
                try:
                    return list(await self._send_many(conn, [(c, p) for c, p, _ in group]))
                except (psycopg.errors.LockNotAvailable, psycopg.OperationalError) as exc:
                    return [_append_error(exc)] * len(group)  # the whole group's fault
                except Exception:  # may be one append's fault: each alone, below
                    pass
            return [await self._send_one(conn, cond, params) for cond, params, _ in group]

    async def _send_one(
        self, conn: Any, cond: str, params: dict[str, Any]
    ) -> list[Row] | BaseException:
        import psycopg

        try:
            return await self._send_append(conn, cond, params)
        except psycopg.errors.UniqueViolation:
            return []
        except Exception as exc:
            return _append_error(exc)

    def _many_sql(self, index: int, cond: str) -> str:
        """The INSERT of the ``index``-th append of a group, its parameters suffixed with
        ``_index``. Beyond the expected-version check it inserts nothing if any of its
        ids is stored (a unique violation would abort the whole group's transaction)."""
        key = (index, cond)
        sql = self._many_cache.get(key)
        if sql is None:
            sql = (
                self._insert_head
                + cond
                + f" AND NOT EXISTS (SELECT 1 FROM {self._qualified} WHERE tenant = "
                "%(tenant)s AND event_id = ANY(ARRAY(SELECT b->>'id' FROM "
                "jsonb_array_elements(%(batch)s::jsonb) AS b))) RETURNING position, version"
            )
            sql = re.sub(r"%\((\w+)\)s", rf"%(\1_{index})s", sql)
            if len(self._many_cache) < 4096:
                self._many_cache[key] = sql
        return sql

    async def _send_many(
        self, conn: Any, appends: list[tuple[str, dict[str, Any]]]
    ) -> list[list[Row]]:
        """Lock every tenant of the group (in a fixed order), insert each append, notify
        and commit, in one message and one round trip. An append whose expected version
        does not hold or whose ids are stored inserts nothing and returns no rows; the
        others are unaffected. Any error aborts the whole transaction (nothing written)."""
        import psycopg

        values: dict[str, Any] = {"channel": self._channel}
        statements = ["BEGIN"]
        tenants = sorted({params["tenant"] for _, params in appends})
        for j, tenant in enumerate(tenants):
            statements.append(f"SELECT pg_advisory_xact_lock(hashtext(%(lock_{j})s))")
            values[f"lock_{j}"] = self._lock_key(tenant)
        for i, (cond, params) in enumerate(appends):
            statements.append(self._many_sql(i, cond))
            for name, value in params.items():
                values[f"{name}_{i}"] = value
        for j, tenant in enumerate(tenants):
            statements.append(f"SELECT pg_notify(%(channel)s, %(notify_{j})s)")
            values[f"notify_{j}"] = tenant
        statements.append("COMMIT")
        try:
            async with psycopg.AsyncClientCursor(conn) as cur:
                await cur.execute("; ".join(statements), values)
                for _ in range(len(tenants)):
                    cur.nextset()  # BEGIN -> the locks -> the first INSERT
                out: list[list[Row]] = []
                for _ in appends:
                    cur.nextset()
                    out.append(list(await cur.fetchall()))
                return out
        finally:
            status = conn.info.transaction_status
            if status in (
                psycopg.pq.TransactionStatus.INTRANS,
                psycopg.pq.TransactionStatus.INERROR,
            ):
                with contextlib.suppress(psycopg.Error):
                    await conn.execute("ROLLBACK")

    async def _before_subscribe(self) -> None:
        if self._listen_task is not None and not self._listen_task.done():
            return
        self._listener = await self._connect()
        await self._listener.execute(f'LISTEN "{self._channel}"')
        self._listen_task = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        import psycopg

        with contextlib.suppress(psycopg.Error):
            async for _ in self._listener.notifies():
                self._wakeup.notify()

    async def ping(self) -> None:
        await self._fetch("SELECT 1", ())

    async def aclose(self) -> None:
        """Finish the appends already queued, then stop subscriptions, the listener and
        every connection; idempotent."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                await writer
        await self._stop_subscriptions()
        task, self._listen_task = self._listen_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        conns, self._conns = self._conns, []
        self._pool = None
        for conn in conns:
            await conn.close()
