"""EventStore on PostgreSQL (psycopg 3, async): `PostgresEventStore`.

One table shared by many processes and machines; positions are assigned under a
transaction-scoped advisory lock per table and tenant (see `._event_store_base`), and
appends arriving while sends are in flight are sent as groups, at most two sends in flight
(see `._group_commit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.event_store.rules import (
    check_expected,
)
from portfolio_core.adapters._shared.event_store.validation import (
    DEFAULT_MAX_EVENT_BYTES,
    EncodedEvent,
)
from portfolio_core.adapters.sql._connections import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    Deadline,
    check_postgres_url,
    connect,
    is_dead,
    stop_listening,
)
from portfolio_core.adapters.sql._event_schema import (
    COLUMNS,
    DEFAULT_INDEXES,
    POSTGRES,
    check_indexes,
    check_name,
    ddl,
    event_table,
)
from portfolio_core.adapters.sql._event_store_base import (
    PORT,
    Row,
    SQLEventStoreBase,
    load_json,
)
from portfolio_core.adapters.sql._group_commit import next_group
from portfolio_core.ports.errors import ConflictError, UnavailableError
from portfolio_core.ports.event_store import ExpectedVersion, StreamState

__all__ = ["PostgresEventStore", "PostgresEventStoreConfig"]

_QueuedAppend = tuple[str, dict[str, Any], "asyncio.Future[list[Row]] | None"]
"""An append waiting for the writer: condition, parameters, the caller's future (None for
the append its caller sends itself)."""


_LANES = 2
"""Sends of appends (alone or grouped) in flight at once, on as many pooled connections.
Measured with 8 concurrent writers (paired medians, under load): 2 lanes append about 1.17x
the events/s of 1, and 3 lanes about 0.9x of 2; sequential appends use one either way."""


def _events(queued: _QueuedAppend) -> int:
    events: int = queued[1]["events"]
    return events


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
    indexes: list[str] = Field(default_factory=lambda: list(DEFAULT_INDEXES))
    connect_timeout: float = Field(DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(DEFAULT_CALL_TIMEOUT, gt=0)


class PostgresEventStore(SQLEventStoreBase):
    """Event store in PostgreSQL via psycopg 3 (async), shared by many processes.

    ``data`` and ``metadata`` are ``jsonb``. Optional indexes (``indexes``, default only the
    partial ``correlation`` one, which costs an append nothing): ``type``, ``time``, and GIN
    (``jsonb_path_ops``) ``data``/``metadata`` indexes for equality filters on top-level
    fields; a query needing an index that is not there still works, by scanning positions
    from ``from_position``. Removing a name does not drop an index already created.

    An append is one message and one round trip (BEGIN, advisory lock, one
    ``INSERT ... SELECT`` that checks the expected version, NOTIFY, COMMIT). Subscribers
    are woken by LISTEN/NOTIFY, with ``poll_interval`` as a fallback.
    One instance serves one event loop: its connections, its group-commit writer and its
    listener belong to the loop that started it (psycopg's async connections cannot be
    shared between loops). A call from another loop raises UnavailableError saying so,
    before touching any connection; make one instance per loop (each with its own pool).

    Connections: a pool of ``pool_size`` and, while anything is subscribed, one listener. A
    pooled connection the server closed (a restart, the network) is noticed before use, with
    no round trip, and replaced; one that breaks during a call fails that call with
    UnavailableError (retryable) and is replaced by the next. The listener reconnects with
    backoff, also when its server stops answering: after ``listener_keepalive`` seconds
    without a notification it must answer a probe within ``call_timeout``. Opening a
    connection takes at most ``connect_timeout`` seconds and a call at most ``call_timeout``
    (waiting for a pooled connection included; keep it above ``lock_timeout``): past either,
    UnavailableError, so a server that accepts and stays silent cannot hang a caller.
    """

    config_model: ClassVar[type[BaseModel]] = PostgresEventStoreConfig
    #: seconds the subscriptions' listener waits for a notification before checking that
    #: its server still answers (a stalled connection is then replaced)
    listener_keepalive: float = 10.0
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
        indexes: Sequence[str] = DEFAULT_INDEXES,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        super().__init__(
            table=table,
            tenant_scoped=tenant_scoped,
            max_event_bytes=max_event_bytes,
            subscription_batch=subscription_batch,
            poll_interval=poll_interval,
        )
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        check_postgres_url(self._url.get_secret_value(), port=PORT)
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.db_schema = check_name(db_schema, "db_schema") if db_schema else None
        self.indexes = check_indexes(indexes, postgres=True)
        self._pool_size = pool_size
        self._lock_timeout = lock_timeout
        self._channel = f"{self.db_schema or ''}_{self.table}_events"[-63:]
        self._pool: asyncio.Queue[Any] | None = None
        self._conns: list[Any] = []
        self._listener: Any = None
        self._listen_task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Group commit: appends waiting for the writer task, the task, and the INSERT
        # texts of a group's members by (index in the group, expected-version condition).
        self._appends: list[_QueuedAppend] = []
        self._sending = 0  # appends or groups in flight (callers sending and writer tasks)
        self._lanes = _LANES
        self._writers: set[asyncio.Task[None]] = set()
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

        conn = await connect(
            self._url.get_secret_value(),
            connect_timeout=self.connect_timeout,
            port=PORT,
            autocommit=autocommit,
        )
        # jsonb arrives as UTF-8 bytes: decode without json.loads' encoding sniffing, and
        # the empty object (the usual metadata) without the parser.
        set_json_loads(load_json, conn)
        # Session-wide, once per connection: the append lock (and the DDL lock in start)
        # wait at most lock_timeout. Set here rather than with SET LOCAL in every append,
        # which cost a statement per append. The connections serve only this store.
        try:
            async with Deadline(conn, self.connect_timeout, port=PORT):
                await conn.execute(f"SET lock_timeout = '{int(self._lock_timeout * 1000)}ms'")
                if not autocommit:
                    await conn.commit()
        except (psycopg.Error, UnavailableError) as exc:
            await conn.close()
            raise UnavailableError(
                f"cannot configure PostgreSQL connection: {type(exc).__name__}", port=PORT
            ) from None
        return conn

    def _check_loop(self) -> None:
        """UnavailableError when called from a loop other than the one that started it."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise UnavailableError(
                "this PostgresEventStore was started on another event loop; its connections "
                "belong to that loop: make one instance per event loop",
                port=PORT,
            )

    async def start(self) -> None:
        """Connect and create the schema, table and indexes if missing; idempotent."""
        self._check_loop()
        async with self._start_lock:
            if self._pool is not None:
                return
            self._loop = asyncio.get_running_loop()
            import psycopg

            conn = await self._connect()
            try:
                async with Deadline(conn, self.call_timeout, port=PORT), conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"pc-ddl:{self._qualified}",)
                    )
                    if self.db_schema:
                        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.db_schema}")
                    table = event_table(
                        self.table, postgres=True, schema=self.db_schema, indexes=self.indexes
                    )
                    for statement in ddl(table, POSTGRES):
                        await conn.execute(statement)
            except UnavailableError:
                await conn.close()
                raise
            except psycopg.Error as exc:
                await conn.close()
                raise UnavailableError(f"cannot create event table: {exc}", port=PORT) from exc
            conns = [conn]
            try:
                for _ in range(self._pool_size - 1):
                    conns.append(await self._connect())
            except BaseException:
                for opened in conns:  # nothing half-started stays open
                    with contextlib.suppress(Exception):
                        await opened.close()
                raise
            pool: asyncio.Queue[Any] = asyncio.Queue()
            for opened in conns:
                pool.put_nowait(opened)
            self._conns = conns
            self._pool = pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> Any:
        """A pooled connection for at most ``call_timeout`` seconds (the wait for it
        included); one the server closed is replaced first."""
        self._check_loop()
        if self._pool is None:
            await self.start()
        pool = self._pool
        assert pool is not None  # noqa: S101 - start() set it; narrows the type
        async with Deadline(None, self.call_timeout, port=PORT) as deadline:
            conn = await pool.get()
            try:
                if is_dead(conn):  # lost (server restart, network): connect again
                    conn = await self._reconnect(conn)
                deadline.conn = conn
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
        self._check_loop()
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
        ids and version"). With fewer than ``_lanes`` sends in flight and none waiting, the
        caller sends it at once; otherwise it queues, and writer tasks send the queue group
        by group (one message, one transaction, one commit per group), at most ``_lanes``
        in flight: the next group waits on the server for the append lock rather than in
        this process, so one group's commit overlaps the next one's trip and preparation."""
        if self._sending < self._lanes and not self._appends:
            self._sending += 1
            try:
                outcome = (await self._send_group([(cond, params, None)]))[0]
            finally:
                self._sending -= 1
                self._start_writers()
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        future: asyncio.Future[list[Row]] = asyncio.get_running_loop().create_future()
        self._appends.append((cond, params, future))
        self._start_writers()
        return await future

    def _start_writers(self) -> None:
        """Start writer tasks while appends wait and a lane is free."""
        while self._appends and self._sending < self._lanes:
            self._sending += 1
            task = asyncio.get_running_loop().create_task(self._write_groups())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)

    async def _write_groups(self) -> None:
        """A writer task: send the waiting appends group by group until none is left."""
        try:
            while self._appends:
                group = next_group(self._appends, _events)
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
            self._sending -= 1

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
                except Exception:  # noqa: S110 - may be one append's fault: each alone, below
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
        self._listener = await self._listening_connection()
        self._listen_task = asyncio.get_running_loop().create_task(self._listen())

    async def _listening_connection(self) -> Any:
        conn = await self._connect()
        try:
            async with Deadline(conn, self.call_timeout, port=PORT):
                await conn.execute(f'LISTEN "{self._channel}"')
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        return conn

    async def _listen(self) -> None:
        """Wake subscribers on every NOTIFY; when the connection drops, reconnect with
        backoff and wake them anyway (they catch up on what they may have missed).

        A connection that stays open but silent (a stalled server or network) would wait
        for notifications forever: after ``listener_keepalive`` seconds without one, the
        listener asks the server ``SELECT 1`` within ``call_timeout``; no answer counts as
        a dropped connection (reconnect with backoff)."""
        import psycopg

        delay = 0.05
        while True:
            try:
                if self._listener is None:
                    self._listener = await self._listening_connection()
                    self._wakeup.notify()
                    delay = 0.05
                heard = False
                async for _ in self._listener.notifies(timeout=self.listener_keepalive):
                    heard = True
                    self._wakeup.notify()
                if not heard:
                    async with Deadline(self._listener, self.call_timeout, port=PORT):
                        await self._listener.execute("SELECT 1")
                    # a notification that arrived during the probe may not be yielded
                    # by every psycopg version: subscribers catch up anyway
                    self._wakeup.notify()
                continue
            except (psycopg.Error, UnavailableError, OSError):
                pass
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def ping(self) -> None:
        await self._fetch("SELECT 1", ())

    async def aclose(self) -> None:
        """Finish the appends already queued, then stop subscriptions, the listener and
        every connection; idempotent."""
        while self._writers:  # gather yields, so finished writers leave the set
            await asyncio.gather(*self._writers, return_exceptions=True)
        await self._stop_subscriptions()
        task, self._listen_task = self._listen_task, None
        await stop_listening(task)
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        conns, self._conns = self._conns, []
        self._pool = None
        for conn in conns:
            await conn.close()
