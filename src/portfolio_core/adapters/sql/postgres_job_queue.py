"""JobQueue in PostgreSQL (psycopg 3, async): ``FOR UPDATE SKIP LOCKED`` and LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.job_queue import (
    EXPIRED,
    PORT,
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
    take_or_wait,
)
from portfolio_core.adapters.sql._connections import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    Deadline,
    check_postgres_url,
    connect,
    create_tables,
    is_dead,
    stop_listening,
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

__all__ = ["PostgresJobQueue", "PostgresJobQueueConfig"]

Row = tuple[Any, ...]


class PostgresJobQueueConfig(BaseModel):
    """Configuration of `PostgresJobQueue` (``postgres`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    table: str = "pc_jobs"
    pool_size: int = Field(4, gt=0)
    poll_interval: float = Field(1.0, gt=0)
    connect_timeout: float = Field(DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(DEFAULT_CALL_TIMEOUT, gt=0)


def _unavailable(exc: BaseException, what: str) -> UnavailableError:
    return UnavailableError(f"PostgreSQL job queue: {what} failed: {type(exc).__name__}", port=PORT)


class PostgresJobQueue(Configurable):
    """Jobs as rows of one PostgreSQL table, shared by every process that reaches the server.

    ``reserve`` picks rows with ``FOR UPDATE SKIP LOCKED`` (concurrent workers never wait on
    each other nor take the same job), after taking back expired leases, in one round trip
    (pipeline mode). Enqueues ``NOTIFY`` the queue's channel in the same statement; a
    waiting ``reserve`` is woken by it at once (capability ``WAKEUP``) and otherwise looks
    again every ``poll_interval`` seconds (for scheduled jobs falling due, or if the listener
    connection was lost).

    Connections: a pool of ``pool_size`` autocommit connections and one listener. A pooled
    connection the server closed is noticed before use (no round trip) and replaced; one
    that breaks during a call (server restart, network) is discarded and the call raises
    `UnavailableError` (retryable); the next call connects again, and the listener
    reconnects by itself. Opening a connection takes at most ``connect_timeout`` seconds and
    a call at most ``call_timeout`` (waiting for a pooled connection included): past either,
    UnavailableError, so a server that accepts and stays silent cannot hang a caller.

    Times are this process's ``clock`` readings (``time.time``): keep the clocks of machines
    sharing a queue in sync (NTP), as lease ends compare across them.
    One instance serves one event loop.
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        JobQueueCapability.PERSISTENT,
        JobQueueCapability.SHARED,
        JobQueueCapability.WAKEUP,
        JobQueueCapability.INSPECT,
    )
    config_model: ClassVar[type[BaseModel]] = PostgresJobQueueConfig

    def __init__(
        self,
        url: str | SecretStr,
        *,
        table: str = "pc_jobs",
        pool_size: int = 4,
        poll_interval: float = 1.0,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        check_postgres_url(self._url.get_secret_value(), port=PORT)
        self.table = check_table(table)
        self._pool_size = pool_size
        self._poll = poll_interval
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        self._clock = clock
        self._channel = f"pc_jobs_{self.table}"[:63]
        self._idle: asyncio.Queue[Any] | None = None
        self._open: set[Any] = set()
        self._listener: Any = None
        self._listen_task: asyncio.Task[None] | None = None
        self._wakeups: dict[str, asyncio.Event] = {}
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._completions: list[tuple[int, str, asyncio.Future[None]]] = []
        self._completer: asyncio.Task[None] | None = None
        t = self.table
        self._sql_rescue = (
            f"UPDATE {t} SET state = CASE WHEN attempts >= max_attempts THEN 'dead' "
            "ELSE 'queued' END, last_error = CASE WHEN attempts >= max_attempts THEN %s "
            "ELSE last_error END, token = NULL, lease_until = NULL "
            f"WHERE id IN (SELECT id FROM {t} WHERE queue = %s AND state = 'running' "
            "AND lease_until <= %s FOR UPDATE SKIP LOCKED)"
        )
        self._sql_take = (
            f"WITH picked AS (SELECT id FROM {t} WHERE queue = %s AND state = 'queued' "
            "AND run_at <= %s ORDER BY priority DESC, run_at, id LIMIT %s "
            f"FOR UPDATE SKIP LOCKED) UPDATE {t} SET state = 'running', "
            f"attempts = attempts + 1, lease_until = %s, token = %s || {t}.id "
            f"FROM picked WHERE {t}.id = picked.id RETURNING "
            + ", ".join(f"{t}.{c.strip()}" for c in COLUMNS.split(","))
        )
        self._sql_insert = (
            f"WITH ins AS (INSERT INTO {t} (queue, task, payload, state, priority, attempts, "
            "max_attempts, run_at, enqueued_at, unique_key) "
            "VALUES (%s, %s, %s, 'queued', %s, 0, %s, %s, %s, %s) "
            "ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL "
            "AND state NOT IN ('dead', 'cancelled') DO NOTHING RETURNING id, queue, run_at) "
            "SELECT id, CASE WHEN run_at <= %s THEN pg_notify(%s, queue) END FROM ins"
        )
        self._sql_holder = (
            f"SELECT id FROM {t} WHERE queue = %s AND unique_key = %s "
            "AND state NOT IN ('dead', 'cancelled')"
        )

    def __repr__(self) -> str:
        return f"PostgresJobQueue(table={self.table!r}, url=**********)"

    # -- connections -----------------------------------------------------------------------------

    async def _connect(self) -> Any:
        return await connect(
            self._url.get_secret_value(), connect_timeout=self._connect_timeout, port=PORT
        )

    async def start(self) -> None:
        """Connect, create the table and indexes if missing, and start listening. Idempotent."""
        async with self._start_lock:
            if self._started:
                return
            conn = await self._connect()
            t = self.table
            await create_tables(
                conn,
                t,
                [
                    f"CREATE TABLE IF NOT EXISTS {t} (id bigserial PRIMARY KEY, "
                    "queue text NOT NULL, task text NOT NULL, payload text NOT NULL, "
                    "state text NOT NULL, priority integer NOT NULL, "
                    "attempts integer NOT NULL, max_attempts integer NOT NULL, "
                    "run_at double precision NOT NULL, enqueued_at double precision NOT NULL, "
                    "unique_key text, last_error text, lease_until double precision, "
                    "token text)",
                    f"CREATE INDEX IF NOT EXISTS {t}_ready ON {t} "
                    "(queue, priority DESC, run_at, id) WHERE state = 'queued'",
                    f"CREATE INDEX IF NOT EXISTS {t}_leased ON {t} (queue, lease_until) "
                    "WHERE state = 'running'",
                    f"CREATE INDEX IF NOT EXISTS {t}_state ON {t} (queue, state, id)",
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {t}_unique ON {t} "
                    "(queue, unique_key) WHERE unique_key IS NOT NULL "
                    "AND state NOT IN ('dead', 'cancelled')",
                ],
                seconds=self._call_timeout,
                what="the job table",
                port=PORT,
            )
            self._idle = asyncio.Queue()
            self._open = {conn}
            self._idle.put_nowait(conn)
            self._started = True
            self._closed = False
            self._listen_task = asyncio.get_running_loop().create_task(self._listen())

    @contextlib.asynccontextmanager
    async def _connection(self, what: str) -> AsyncIterator[Any]:
        """A pooled connection for at most ``call_timeout`` seconds (waiting for it
        included); one the server closed is replaced before use, one that breaks is
        discarded; driver errors and the deadline are reported as UnavailableError."""
        import psycopg

        if not self._started:
            await self.start()
        idle = self._idle
        assert idle is not None  # noqa: S101  (type narrowing)
        async with Deadline(None, self._call_timeout, port=PORT) as deadline:
            conn = None
            token = False  # took a free slot's None from the queue
            if not idle.empty() or len(self._open) >= self._pool_size:
                conn = await idle.get()
                token = conn is None
            if conn is not None and is_dead(conn):  # the server closed it while idle
                self._open.discard(conn)
                with contextlib.suppress(Exception):
                    await conn.close()
                conn, token = None, True
            if conn is None:  # a free slot: connect (again, after a broken connection)
                try:
                    conn = await self._connect()
                except BaseException:
                    if token and self._idle is idle:
                        idle.put_nowait(None)
                    raise
                self._open.add(conn)
            deadline.conn = conn
            broken = False
            try:
                yield conn
            except psycopg.Error as exc:
                broken = conn.closed or conn.broken or isinstance(exc, psycopg.OperationalError)
                raise _unavailable(exc, what) from exc
            finally:
                if broken or conn.closed or conn.broken:
                    self._open.discard(conn)
                    with contextlib.suppress(Exception):
                        await conn.close()
                    if self._idle is idle:
                        idle.put_nowait(None)
                elif self._idle is idle:
                    idle.put_nowait(conn)

    async def _listen(self) -> None:
        """Keep a LISTEN connection; on each notification wake that queue's waiters."""
        import psycopg

        delay = 0.05
        while not self._closed:
            try:
                self._listener = await self._connect()
                await self._listener.execute(f'LISTEN "{self._channel}"')
                delay = 0.05
                for event in self._wakeups.values():  # missed notifications while away
                    event.set()
                async for note in self._listener.notifies():
                    woken = self._wakeups.get(note.payload)
                    if woken is not None:
                        woken.set()
            except (psycopg.Error, UnavailableError):
                pass
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()
            if self._stopping():
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _stopping(self) -> bool:
        return self._closed  # aclose() may have set it while the listener awaited

    async def aclose(self) -> None:
        """Stop listening and close every connection. Idempotent."""
        self._closed = True
        completer, self._completer = self._completer, None
        if completer is not None:
            with contextlib.suppress(Exception):
                await completer
        task, self._listen_task = self._listen_task, None
        await stop_listening(task)
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()
        conns, self._open = self._open, set()
        self._idle = None
        self._started = False
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close()

    async def ping(self) -> None:
        async with self._connection("ping") as conn:
            await conn.execute("SELECT 1")

    async def _fetch(self, what: str, sql: str, params: Sequence[Any]) -> list[Row]:
        async with self._connection(what) as conn:
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall()) if cur.description else []

    # -- producing -------------------------------------------------------------------------------

    async def enqueue(self, job: NewJob) -> str:
        now = self._clock()
        p = prepare(job, now)
        params = (
            p.queue, p.task, p.payload_json, p.priority, p.max_attempts, p.run_at, now,
            p.unique_key, now, self._channel,
        )  # fmt: skip
        async with self._connection("enqueue") as conn:
            while True:
                cur = await conn.execute(self._sql_insert, params)
                row = await cur.fetchone()
                if row is not None:
                    return str(row[0])
                cur = await conn.execute(self._sql_holder, (p.queue, p.unique_key))
                holder = await cur.fetchone()
                if holder is not None:  # else it died meanwhile: insert again
                    return str(holder[0])

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        now = self._clock()
        prepared = [prepare(job, now) for job in jobs]
        ids: list[str] = []
        if not prepared:
            return ids
        async with self._connection("enqueue") as conn, conn.transaction():
            async with conn.pipeline():
                cursors = [
                    await conn.execute(
                        self._sql_insert,
                        (
                            p.queue, p.task, p.payload_json, p.priority, p.max_attempts,
                            p.run_at, now, p.unique_key, now, self._channel,
                        ),
                    )
                    for p in prepared
                ]  # fmt: skip
            for p, cur in zip(prepared, cursors, strict=True):
                row = await cur.fetchone()
                if row is None:  # its unique key is held (maybe by an earlier job of the batch)
                    cur = await conn.execute(self._sql_holder, (p.queue, p.unique_key))
                    row = await cur.fetchone()
                    assert row is not None  # noqa: S101  (type narrowing)
                ids.append(str(row[0]))
        return ids

    # -- consuming -------------------------------------------------------------------------------

    async def _take(self, queue: str, limit: int, lease: float) -> list[Reservation]:
        now = self._clock()
        prefix = uuid.uuid4().hex + ":"
        async with self._connection("reserve") as conn:
            # One round trip; the commit does not wait for the WAL flush: a server crash can
            # only undo reservations, which makes those jobs available again (at-least-once).
            async with conn.pipeline(), conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit TO OFF")
                await conn.execute(self._sql_rescue, (EXPIRED, queue, now))
                cur = await conn.execute(self._sql_take, (queue, now, limit, now + lease, prefix))
            rows = await cur.fetchall()
        rows.sort(key=lambda r: (-r[5], r[8], r[0]))
        return [Reservation(to_job(r, now), r[13]) for r in rows]

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        name, limit, lease, wait = check_reserve(queue, limit, lease, wait)
        if wait <= 0:
            return await self._take(name, limit, lease)
        if not self._started:
            await self.start()
        event = self._wakeups.get(name)
        if event is None:
            event = self._wakeups[name] = asyncio.Event()
        return await take_or_wait(
            lambda: self._take(name, limit, lease), event, wait=wait, poll=self._poll
        )

    async def _finish(
        self, reservation: Reservation, what: str, set_sql: str, params: Sequence[Any]
    ) -> Row:
        """Apply ``set_sql`` to the job if ``reservation`` holds it; else ConflictError."""
        job_id = check_job_id(reservation.job.id)
        key = int(job_id) if job_id.isdigit() else -1
        t = self.table
        rows = await self._fetch(
            what,
            f"UPDATE {t} SET {set_sql} WHERE id = %s AND state = 'running' AND token = %s "
            f"RETURNING {COLUMNS}",
            (*params, key, reservation.token),
        )
        if rows:
            return rows[0]
        current = await self._fetch(what, f"SELECT state FROM {t} WHERE id = %s", (key,))
        if not current:
            raise NotFoundError(f"no job {job_id!r}", key=job_id, port=PORT)
        raise holds_not(key, current[0][0])

    async def complete(self, reservation: Reservation) -> None:
        """Completions made while an earlier one is in flight go to the server together, in
        one statement and one durable commit (each is still checked against its own token,
        and each caller returns only once its completion is committed)."""
        check_reservation(reservation)
        job_id = check_job_id(reservation.job.id)
        key = int(job_id) if job_id.isdigit() and len(job_id) < 19 else -1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._completions.append((key, reservation.token, future))
        if self._completer is None or self._completer.done():
            self._completer = asyncio.ensure_future(self._complete_batches())
        await asyncio.shield(future)

    async def _complete_batches(self) -> None:
        while self._completions:
            batch, self._completions = self._completions, []
            try:
                rows = await self._fetch(
                    "complete",
                    f"UPDATE {self.table} AS t SET state = 'completed', token = NULL, "
                    "lease_until = NULL FROM unnest(%s::bigint[], %s::text[]) AS u(id, token) "
                    "WHERE t.id = u.id AND t.state = 'running' AND t.token = u.token "
                    "RETURNING t.id",
                    ([k for k, _, _ in batch], [tok for _, tok, _ in batch]),
                )
                done = {r[0] for r in rows}
                missed = [k for k, _, _ in batch if k not in done]
                states: dict[int, str] = {}
                if missed:
                    found = await self._fetch(
                        "complete",
                        f"SELECT id, state FROM {self.table} WHERE id = ANY(%s)",
                        (missed,),
                    )
                    states = {r[0]: r[1] for r in found}
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for key, _, future in batch:
                if future.done():
                    continue
                if key in done:
                    future.set_result(None)
                elif key in states:
                    future.set_exception(holds_not(key, states[key]))
                else:
                    future.set_exception(NotFoundError(f"no job {key}", key=str(key), port=PORT))

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        check_reservation(reservation)
        message = check_error(error)
        delay = check_retry_in(retry_in)
        now = self._clock()
        attempts = reservation.job.attempts
        retry_at = now + (default_backoff(attempts) if delay is None else delay)
        row = await self._finish(
            reservation,
            "fail",
            "state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, "
            "run_at = CASE WHEN attempts >= max_attempts THEN run_at ELSE %s END, "
            "last_error = %s, token = NULL, lease_until = NULL",
            (retry_at, message),
        )
        if row[4] == "queued" and retry_at <= now:
            await self._fetch("fail", "SELECT pg_notify(%s, %s)", (self._channel, row[1]))
        return to_job(row, now)

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        check_reservation(reservation)
        seconds = check_lease(lease)
        now = self._clock()
        row = await self._finish(reservation, "extend", "lease_until = %s", (now + seconds,))
        return Reservation(to_job(row, now), reservation.token)

    async def release(self, reservation: Reservation) -> None:
        check_reservation(reservation)
        row = await self._finish(
            reservation,
            "release",
            "state = 'queued', attempts = attempts - 1, token = NULL, lease_until = NULL",
            (),
        )
        await self._fetch("release", "SELECT pg_notify(%s, %s)", (self._channel, row[1]))

    # -- inspecting and managing -------------------------------------------------------------------

    def _key(self, job_id: Any) -> tuple[str, int]:
        text = check_job_id(job_id)
        return text, int(text) if text.isdigit() and len(text) < 19 else -1

    async def get(self, job_id: str) -> Job:
        text, key = self._key(job_id)
        rows = await self._fetch("get", f"SELECT {COLUMNS} FROM {self.table} WHERE id = %s", (key,))
        if not rows:
            raise NotFoundError(f"no job {text!r}", key=text, port=PORT)
        return to_job(rows[0], self._clock())

    async def list_jobs(self, queue: str, state: JobState, *, limit: int = 100) -> list[Job]:
        name = check_queue(queue)
        wanted = check_state(state)
        limit = check_limit(limit)
        now = self._clock()
        stored, extra = state_filter(wanted)
        cond = (" AND " + extra.format(now="%s")) if extra else ""
        params: tuple[Any, ...] = (name, stored, now, limit) if extra else (name, stored, limit)
        rows = await self._fetch(
            "list_jobs",
            f"SELECT {COLUMNS} FROM {self.table} WHERE queue = %s AND state = %s{cond} "
            "ORDER BY id LIMIT %s",
            params,
        )
        return [to_job(r, now) for r in rows]

    async def retry(self, job_id: str) -> Job:
        import psycopg

        text, key = self._key(job_id)
        now = self._clock()
        t = self.table
        async with self._connection("retry") as conn, conn.transaction():
            cur = await conn.execute(f"SELECT {COLUMNS} FROM {t} WHERE id = %s FOR UPDATE", (key,))
            row = await cur.fetchone()
            if row is None:
                raise NotFoundError(f"no job {text!r}", key=text, port=PORT)
            state = row[4]
            if state in ("running", "completed"):
                raise ConflictError(f"job {key} is {state}: it cannot be retried", port=PORT)
            if state in ("dead", "cancelled"):
                sql = "state = 'queued', attempts = 0, run_at = %s"
            elif row[8] > now:
                sql = "run_at = %s"
            else:
                return to_job(row, now)
            try:
                async with conn.transaction():
                    cur = await conn.execute(
                        f"UPDATE {t} SET {sql} WHERE id = %s RETURNING {COLUMNS}", (now, key)
                    )
            except psycopg.errors.UniqueViolation:
                raise ConflictError(
                    f"another job now holds the unique key {row[10]!r}", port=PORT
                ) from None
            updated = await cur.fetchone()
            await conn.execute("SELECT pg_notify(%s, %s)", (self._channel, row[1]))
        assert updated is not None  # noqa: S101  (type narrowing)
        return to_job(updated, now)

    async def cancel(self, job_id: str) -> bool:
        text, key = self._key(job_id)
        t = self.table
        rows = await self._fetch(
            "cancel",
            f"WITH old AS (SELECT id, state FROM {t} WHERE id = %s FOR UPDATE) "
            f"UPDATE {t} SET state = 'cancelled' FROM old WHERE {t}.id = old.id "
            f"AND old.state NOT IN ('running', 'completed', 'cancelled') RETURNING old.state",
            (key,),
        )
        if rows:
            return True
        current = await self._fetch("cancel", f"SELECT state FROM {t} WHERE id = %s", (key,))
        if not current:
            raise NotFoundError(f"no job {text!r}", key=text, port=PORT)
        if current[0][0] == "cancelled":
            return False
        raise ConflictError(f"job {key} is {current[0][0]}: it cannot be cancelled", port=PORT)

    async def queues(self) -> list[str]:
        """The names of the queues holding at least one job, sorted."""
        rows = await self._fetch(
            "queues", f"SELECT DISTINCT queue FROM {self.table} ORDER BY queue", ()
        )
        return [str(r[0]) for r in rows]

    async def counts(self, queue: str) -> JobCounts:
        name = check_queue(queue)
        now = self._clock()
        rows = await self._fetch(
            "counts",
            "SELECT CASE WHEN state = 'queued' AND run_at > %s THEN 'scheduled' "
            "WHEN state = 'queued' THEN 'available' ELSE state END AS s, count(*) "
            f"FROM {self.table} WHERE queue = %s GROUP BY 1",
            (now, name),
        )
        return JobCounts(**{s: int(n) for s, n in rows})
