"""EventStore on SQLite, the embedded default: :class:`SQLiteEventStore`.

One table in one database file, shared by the processes that open it; positions are assigned
under SQLite's write lock (see :mod:`._event_store_base`), and concurrent appends of this
process are committed in groups (see :mod:`._group_commit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.event_store.rules import (
    check_expected,
)
from portfolio_core.adapters._shared.event_store.validation import (
    DEFAULT_MAX_EVENT_BYTES,
    EncodedEvent,
)
from portfolio_core.adapters.sql._event_schema import (
    COLUMNS,
    DEFAULT_INDEXES,
    SQLITE,
    check_indexes,
    check_name,
    ddl,
    event_table,
    micros,
)
from portfolio_core.adapters.sql._event_store_base import PORT, Row, SQLEventStoreBase
from portfolio_core.adapters.sql._group_commit import (
    AppendQueue,
    Outcome,
    PendingAppend,
    settle,
)
from portfolio_core.adapters.sql._integrity import (
    DAMAGED_TEXT,
    IntegrityCheck,
    check_statement,
    refuse_damaged,
)
from portfolio_core.ports.errors import (
    ConflictError,
    CorruptDataError,
    UnavailableError,
    WrongExpectedVersionError,
)
from portfolio_core.ports.event_store import EventQuery, ExpectedVersion

__all__ = ["SQLiteEventStore", "SQLiteEventStoreConfig"]

T = TypeVar("T")


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
    """Configuration of :class:`SQLiteEventStore` (``sqlite`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="database file, or ':memory:'")
    table: str = "pc_events"
    tenant_scoped: bool = False
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, gt=0)
    synchronous: Literal["full", "normal"] = "full"
    busy_timeout: float = Field(30.0, gt=0)
    inline: bool = True
    indexed_fields: list[str] = Field(default_factory=list)
    indexes: list[str] = Field(default_factory=lambda: list(DEFAULT_INDEXES))
    subscription_batch: int = Field(256, gt=0)
    poll_interval: float = Field(0.05, gt=0)
    integrity_check: IntegrityCheck = "full"


class SQLiteEventStore(SQLEventStoreBase):
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
        indexes: Sequence[str] = DEFAULT_INDEXES,
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
        self.indexes = check_indexes(indexes, postgres=False)
        self._inline = inline
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._fast: sqlite3.Connection | None = None
        self._fast_lock = threading.Lock()
        self._last_time = 0
        # Group commit (see the class docstring): appends waiting for the writer, whether
        # the writer is running, and the heuristic choosing inline calls or the writer.
        self._queue = AppendQueue()
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
        assert self._executor is not None  # noqa: S101 - start() set it; narrows the type
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
            table = event_table(self.table, postgres=False, indexes=self.indexes)
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
    ) -> Outcome:
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
    ) -> Outcome:
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
        self, conn: sqlite3.Connection, group: list[PendingAppend], *, busy_raises: bool
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

    def _hand_over(self, group: list[PendingAppend]) -> None:
        """Give ``group`` (first) and the rest of the queue to the writer thread."""
        self._queue.put_back(group)
        executor = self._executor
        if executor is None:
            self._fail_queued()
        else:
            executor.submit(self._drain)

    def _fail_queued(self) -> None:
        left = self._queue.take_all()
        for pending in left:
            pending.error = UnavailableError("the SQLite event store was closed", port=PORT)
        settle(left)

    def _lead(self) -> None:
        """Write the waiting appends on this thread's never-waiting connection, group by
        group, until none is left; if the database is busy (another process, or another
        thread's group), hand the rest to the writer thread, which waits for it."""
        while group := self._queue.take_group():
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
            settle(group)

    def _drain(self) -> None:
        """Writer thread: commit one group of waiting appends on the patient connection,
        hand out the outcomes, and queue another round if more are waiting (one round per
        job, so reads queued on this thread are not starved by a stream of appends)."""
        group = self._queue.take_group()
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
            settle(group)
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
    ) -> Outcome:
        """Queue the append and wait for the commit that holds it. The first append to
        find no writer at work becomes the writer: with ``lead`` it yields once, so the
        other tasks ready to append join its group, then writes the group on this thread;
        otherwise it starts the writer thread."""
        pending = PendingAppend(tenant, stream, batch, expected, asyncio.get_running_loop())
        if self._queue.join(pending):
            if lead:
                try:
                    await asyncio.sleep(0)
                finally:  # even if cancelled: the group must be written, and the role freed
                    self._lead()
            else:
                assert self._executor is not None  # noqa: S101 - set by start(), as above
                self._executor.submit(self._drain)
        return await pending.future

    async def _write_append(
        self, tenant: str, stream: str, batch: list[EncodedEvent], expected: ExpectedVersion
    ) -> Outcome:
        if self._executor is None:
            await self.start()
        try:
            if self._fast is None:  # inline=False, or ':memory:'
                return await self._append_grouped(tenant, stream, batch, expected, lead=False)
            if not self._queue.alone():
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
            self._queue.appended()

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
