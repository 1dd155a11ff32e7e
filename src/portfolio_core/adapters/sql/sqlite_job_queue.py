"""JobQueue in one SQLite file: the embedded default, shared by the processes of one machine."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.job_queue import (
    EXPIRED,
    PORT,
    EnqueueWakeup,
    Prepared,
    check_error,
    check_job_id,
    check_lease,
    check_limit,
    check_queue,
    check_reservation,
    check_reserve,
    check_retry_in,
    check_state,
    prepare,
)
from portfolio_core.adapters.sql._job_rows import (
    COLUMNS,
    check_table,
    holds_not,
    state_filter,
    to_job,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import ConflictError, NotFoundError, UnavailableError
from portfolio_core.ports.job_queue import (
    Job,
    JobCounts,
    JobQueueCapability,
    JobState,
    NewJob,
    Reservation,
    default_backoff,
)

__all__ = ["SQLiteJobQueue", "SQLiteJobQueueConfig"]

T = TypeVar("T")
Row = tuple[Any, ...]


class SQLiteJobQueueConfig(BaseModel):
    """Configuration of `SQLiteJobQueue` (``sqlite`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field("portfolio-jobs.db", description="database file, or ':memory:'")
    table: str = "pc_jobs"
    poll_interval: float = Field(0.05, gt=0)
    busy_timeout: float = Field(30.0, gt=0)
    synchronous: str = Field("normal", pattern="^(full|normal)$")


class SQLiteJobQueue(Configurable):
    """Jobs as rows of one table in a SQLite file (WAL journal).

    Every change is one ``BEGIN IMMEDIATE`` transaction, so several processes sharing the
    file never hand out one job twice; a process waits up to ``busy_timeout`` seconds for
    another's transaction, then gets `UnavailableError`. Statements run on one worker
    thread per instance. A waiting ``reserve`` is woken at once by enqueues through this
    instance and looks again every ``poll_interval`` seconds for other processes' jobs.
    ``synchronous=normal`` (the default) may lose the last transactions on power loss, never
    on a process crash; ``full`` makes each commit durable.
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        JobQueueCapability.PERSISTENT, JobQueueCapability.SHARED, JobQueueCapability.INSPECT
    )
    config_model: ClassVar[type[BaseModel]] = SQLiteJobQueueConfig

    def __init__(
        self,
        path: str | Path = "portfolio-jobs.db",
        *,
        table: str = "pc_jobs",
        poll_interval: float = 0.05,
        busy_timeout: float = 30.0,
        synchronous: str = "normal",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.table = check_table(table)
        self._poll = poll_interval
        self._busy_timeout = busy_timeout
        self._synchronous = "FULL" if synchronous == "full" else "NORMAL"
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._wakeup = EnqueueWakeup()
        self._start_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteJobQueue(path={self.path!r}, table={self.table!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
        )
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            t = self.table
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "queue TEXT NOT NULL, task TEXT NOT NULL, payload TEXT NOT NULL, "
                "state TEXT NOT NULL, priority INTEGER NOT NULL, attempts INTEGER NOT NULL, "
                "max_attempts INTEGER NOT NULL, run_at REAL NOT NULL, enqueued_at REAL NOT NULL, "
                "unique_key TEXT, last_error TEXT, lease_until REAL, token TEXT)"
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {t}_ready ON {t} (queue, priority DESC, run_at, id) "
                "WHERE state = 'queued'"
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {t}_leased ON {t} (queue, lease_until) "
                "WHERE state = 'running'"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_state ON {t} (queue, state, id)")
            conn.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {t}_unique ON {t} (queue, unique_key) "
                "WHERE unique_key IS NOT NULL AND state NOT IN ('dead', 'cancelled')"
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    async def start(self) -> None:
        """Open the file and create the table if missing. Idempotent."""
        async with self._start_lock:
            if self._conn is not None:
                return
            executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-jobs")
            try:
                conn = await asyncio.get_running_loop().run_in_executor(executor, self._open)
            except sqlite3.Error as exc:
                executor.shutdown(wait=False)
                raise UnavailableError(
                    f"cannot open the job queue database: {exc}", port=PORT
                ) from exc
            self._executor, self._conn = executor, conn

    async def aclose(self) -> None:
        """Close the file. Idempotent."""
        conn, self._conn = self._conn, None
        executor, self._executor = self._executor, None
        if executor is not None and conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._call(lambda conn: conn.execute("SELECT 1").fetchall())

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            await self.start()
        assert self._executor is not None  # noqa: S101  (type narrowing)
        assert self._conn is not None  # noqa: S101  (type narrowing)
        conn = self._conn

        def run() -> T:
            return fn(conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except sqlite3.Error as exc:
            raise UnavailableError(f"SQLite job queue: {exc}", port=PORT) from exc

    def _write(self, conn: sqlite3.Connection, body: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # -- producing -------------------------------------------------------------------------------

    def _insert(self, conn: sqlite3.Connection, p: Prepared, now: float) -> str:
        if p.unique_key is not None:
            found = conn.execute(
                f"SELECT id FROM {self.table} WHERE queue = ? AND unique_key = ? "
                "AND state NOT IN ('dead', 'cancelled')",
                (p.queue, p.unique_key),
            ).fetchone()
            if found is not None:
                return str(found[0])
        cur = conn.execute(
            f"INSERT INTO {self.table} (queue, task, payload, state, priority, attempts, "
            "max_attempts, run_at, enqueued_at, unique_key) "
            "VALUES (?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?)",
            (
                p.queue,
                p.task,
                p.payload_json,
                p.priority,
                p.max_attempts,
                p.run_at,
                now,
                p.unique_key,
            ),
        )
        return str(cur.lastrowid)

    async def enqueue(self, job: NewJob) -> str:
        return (await self.enqueue_many([job]))[0]

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        now = self._clock()
        prepared = [prepare(job, now) for job in jobs]
        if not prepared:
            return []

        def run(conn: sqlite3.Connection) -> list[str]:
            return self._write(conn, lambda: [self._insert(conn, p, now) for p in prepared])

        ids = await self._call(run)
        self._wakeup.notify()
        return ids

    # -- consuming -------------------------------------------------------------------------------

    def _take(self, conn: sqlite3.Connection, queue: str, limit: int, lease: float) -> list[Row]:
        now = self._clock()
        t = self.table

        def body() -> list[Row]:
            conn.execute(
                f"UPDATE {t} SET state = CASE WHEN attempts >= max_attempts THEN 'dead' "
                "ELSE 'queued' END, last_error = CASE WHEN attempts >= max_attempts THEN ? "
                "ELSE last_error END, token = NULL, lease_until = NULL "
                "WHERE queue = ? AND state = 'running' AND lease_until <= ?",
                (EXPIRED, queue, now),
            )
            prefix = uuid.uuid4().hex + ":"
            return conn.execute(
                f"UPDATE {t} SET state = 'running', attempts = attempts + 1, lease_until = ?, "
                "token = ? || id WHERE id IN (SELECT id FROM "
                f"{t} WHERE queue = ? AND state = 'queued' AND run_at <= ? "
                f"ORDER BY priority DESC, run_at, id LIMIT ?) RETURNING {COLUMNS}",
                (now + lease, prefix, queue, now, limit),
            ).fetchall()

        rows = self._write(conn, body)
        rows.sort(key=lambda r: (-r[5], r[8], r[0]))
        return rows

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        name, limit, lease, wait = check_reserve(queue, limit, lease, wait)

        async def take() -> list[Reservation]:
            rows = await self._call(lambda conn: self._take(conn, name, limit, lease))
            now = self._clock()
            return [Reservation(to_job(r, now), r[13]) for r in rows]

        return await self._wakeup.take_or_wait(take, wait=wait, poll=self._poll)

    def _held(self, conn: sqlite3.Connection, reservation: Reservation) -> Row:
        job_id = check_job_id(reservation.job.id)
        row = conn.execute(
            f"SELECT {COLUMNS} FROM {self.table} WHERE id = ?",
            (int(job_id) if job_id.isdigit() else -1,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no job {job_id!r}", key=job_id, port=PORT)
        if row[4] != "running" or row[13] != reservation.token:
            raise holds_not(row[0], row[4])
        return tuple(row)

    async def complete(self, reservation: Reservation) -> None:
        check_reservation(reservation)

        def run(conn: sqlite3.Connection) -> None:
            def body() -> None:
                row = self._held(conn, reservation)
                conn.execute(
                    f"UPDATE {self.table} SET state = 'completed', token = NULL, "
                    "lease_until = NULL WHERE id = ?",
                    (row[0],),
                )

            self._write(conn, body)

        await self._call(run)

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        check_reservation(reservation)
        message = check_error(error)
        delay = check_retry_in(retry_in)
        now = self._clock()

        def run(conn: sqlite3.Connection) -> Row:
            def body() -> Row:
                row = self._held(conn, reservation)
                attempts, max_attempts = row[6], row[7]
                if attempts >= max_attempts:
                    state, run_at = "dead", row[8]
                else:
                    state = "queued"
                    run_at = now + (default_backoff(attempts) if delay is None else delay)
                return tuple(
                    conn.execute(
                        f"UPDATE {self.table} SET state = ?, run_at = ?, last_error = ?, "
                        f"token = NULL, lease_until = NULL WHERE id = ? RETURNING {COLUMNS}",
                        (state, run_at, message, row[0]),
                    ).fetchone()
                )

            return self._write(conn, body)

        row = await self._call(run)
        self._wakeup.notify()
        return to_job(row, now)

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        check_reservation(reservation)
        seconds = check_lease(lease)
        now = self._clock()

        def run(conn: sqlite3.Connection) -> Row:
            def body() -> Row:
                row = self._held(conn, reservation)
                return tuple(
                    conn.execute(
                        f"UPDATE {self.table} SET lease_until = ? WHERE id = ? RETURNING {COLUMNS}",
                        (now + seconds, row[0]),
                    ).fetchone()
                )

            return self._write(conn, body)

        row = await self._call(run)
        return Reservation(to_job(row, now), reservation.token)

    async def release(self, reservation: Reservation) -> None:
        check_reservation(reservation)

        def run(conn: sqlite3.Connection) -> None:
            def body() -> None:
                row = self._held(conn, reservation)
                conn.execute(
                    f"UPDATE {self.table} SET state = 'queued', attempts = attempts - 1, "
                    "token = NULL, lease_until = NULL WHERE id = ?",
                    (row[0],),
                )

            self._write(conn, body)

        await self._call(run)
        self._wakeup.notify()

    # -- inspecting and managing -------------------------------------------------------------------

    def _row(self, conn: sqlite3.Connection, job_id: Any) -> Row:
        text = check_job_id(job_id)
        row = conn.execute(
            f"SELECT {COLUMNS} FROM {self.table} WHERE id = ?",
            (int(text) if text.isdigit() else -1,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no job {text!r}", key=text, port=PORT)
        return tuple(row)

    async def get(self, job_id: str) -> Job:
        row = await self._call(lambda conn: self._row(conn, job_id))
        return to_job(row, self._clock())

    async def list_jobs(self, queue: str, state: JobState, *, limit: int = 100) -> list[Job]:
        name = check_queue(queue)
        wanted = check_state(state)
        limit = check_limit(limit)
        now = self._clock()
        stored, extra = state_filter(wanted)
        cond = (" AND " + extra.format(now="?")) if extra else ""
        params: tuple[Any, ...] = (name, stored, now, limit) if extra else (name, stored, limit)
        rows = await self._call(
            lambda conn: conn.execute(
                f"SELECT {COLUMNS} FROM {self.table} WHERE queue = ? AND state = ?{cond} "
                "ORDER BY id LIMIT ?",
                params,
            ).fetchall()
        )
        return [to_job(r, now) for r in rows]

    async def retry(self, job_id: str) -> Job:
        now = self._clock()

        def run(conn: sqlite3.Connection) -> Row:
            def body() -> Row:
                row = self._row(conn, job_id)
                state, key = row[4], row[10]
                if state in ("running", "completed"):
                    raise ConflictError(f"job {row[0]} is {state}: it cannot be retried", port=PORT)
                if state in ("dead", "cancelled"):
                    if key is not None:
                        holder = conn.execute(
                            f"SELECT id FROM {self.table} WHERE queue = ? AND unique_key = ? "
                            "AND state NOT IN ('dead', 'cancelled')",
                            (row[1], key),
                        ).fetchone()
                        if holder is not None:
                            raise ConflictError(
                                f"job {holder[0]} now holds the unique key {key!r}", port=PORT
                            )
                    sql = "state = 'queued', attempts = 0, run_at = ?"
                elif row[8] > now:
                    sql = "run_at = ?"
                else:
                    return row
                return tuple(
                    conn.execute(
                        f"UPDATE {self.table} SET {sql} WHERE id = ? RETURNING {COLUMNS}",
                        (now, row[0]),
                    ).fetchone()
                )

            return self._write(conn, body)

        row = await self._call(run)
        self._wakeup.notify()
        return to_job(row, now)

    async def cancel(self, job_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            def body() -> bool:
                row = self._row(conn, job_id)
                state = row[4]
                if state == "cancelled":
                    return False
                if state in ("running", "completed"):
                    raise ConflictError(
                        f"job {row[0]} is {state}: it cannot be cancelled", port=PORT
                    )
                conn.execute(f"UPDATE {self.table} SET state = 'cancelled' WHERE id = ?", (row[0],))
                return True

            return self._write(conn, body)

        return await self._call(run)

    async def queues(self) -> list[str]:
        """The names of the queues holding at least one job, sorted."""
        rows = await self._call(
            lambda conn: conn.execute(
                f"SELECT DISTINCT queue FROM {self.table} ORDER BY queue"
            ).fetchall()
        )
        return [str(r[0]) for r in rows]

    async def counts(self, queue: str) -> JobCounts:
        name = check_queue(queue)
        now = self._clock()
        rows = await self._call(
            lambda conn: conn.execute(
                f"SELECT CASE WHEN state = 'queued' AND run_at > ? THEN 'scheduled' "
                "WHEN state = 'queued' THEN 'available' ELSE state END AS s, count(*) "
                f"FROM {self.table} WHERE queue = ? GROUP BY s",
                (now, name),
            ).fetchall()
        )
        return JobCounts(**{s: int(n) for s, n in rows})
