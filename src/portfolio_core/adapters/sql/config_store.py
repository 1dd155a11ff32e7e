"""ConfigStore on SQL: SQLite (embedded, one machine) and PostgreSQL (psycopg 3, shared).

Both keep one table of versions (``version`` primary key, ``body``: the version's change
set as JSON) and a local mirror of it (see ``adapters/_shared/config_store.py``) from which
reads, history, rollbacks and watches are answered after catching up with the versions
committed since. A version is committed while holding the store's write lock -- SQLite's
database lock (``BEGIN IMMEDIATE``), a transaction-scoped advisory lock on PostgreSQL --
and the expected version is checked under it, so versions are committed in order and a
reader that has seen version N has seen every version before it.

Watchers learn of new versions in process at once, from other processes through
LISTEN/NOTIFY on PostgreSQL (``poll_interval`` is only a safety net) and by polling every
``poll_interval`` seconds on SQLite. A PostgreSQL connection that drops is opened again:
the listener reconnects with backoff and watchers catch up from the last version they
delivered, so none is skipped. On PostgreSQL every call is bounded: a connection is opened
within ``connect_timeout`` seconds and a call ends within ``call_timeout`` seconds, or
raises UnavailableError (a server that accepts and stays silent cannot hang a caller).

A version's time is ``wall_clock()`` (``time.time`` by default) read under the write lock,
held at the latest version's time when that clock has stepped back, so times never
decrease along the history whichever process committed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.config_store import (
    DEFAULT_MAX_VALUE_BYTES,
    Draft,
    LogConfigStore,
    StoredSet,
    decode_version,
    encode_set,
)
from portfolio_core.adapters._shared.configurable import Configurable
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
from portfolio_core.adapters.sql._identifiers import check_identifier
from portfolio_core.adapters.sql._sqlite import SQLiteFile
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.config_store import ConfigStoreCapability
from portfolio_core.ports.errors import UnavailableError

__all__ = [
    "PostgresConfigStore",
    "PostgresConfigStoreConfig",
    "SQLiteConfigStore",
    "SQLiteConfigStoreConfig",
]

PORT = "ConfigStore"
T = TypeVar("T")


class _SQLConfigStore(LogConfigStore):
    """What both SQL adapters share: catching the mirror up from ``(version, body)`` rows."""

    capabilities = declare(
        ConfigStoreCapability.PERSISTENT,
        ConfigStoreCapability.SCHEMAS,
        ConfigStoreCapability.SHARED,
    )
    _local = False

    def __init__(
        self,
        *,
        table: str,
        schemas: Mapping[str, object] | None,
        max_value_bytes: int,
        poll_interval: float,
        wall_clock: Callable[[], float],
    ) -> None:
        super().__init__(schemas=schemas, max_value_bytes=max_value_bytes)
        self.table = check_identifier(table)
        self.poll_interval = poll_interval
        self._wall_clock = wall_clock
        self._sync_lock = asyncio.Lock()

    def _time_after(self, last_at: Any) -> int:
        """The time (microseconds) of a version committed now after one timed ``last_at``
        (None: no version yet, or one whose time cannot be read): the wall clock, but never
        before ``last_at``."""
        now = int(self._wall_clock() * 1_000_000)
        return max(now, int(last_at)) if type(last_at) is int else now

    @abstractmethod
    async def _rows_after(self, version: int) -> Sequence[tuple[int, str]]:
        """The committed ``(version, body)`` rows after ``version``, oldest first."""

    def _stored(self, version: int, body: str) -> StoredSet:
        return decode_version(
            body, version, what=f"config table {self.table!r}: the row", location=self.table
        )

    async def _sync(self) -> None:
        async with self._sync_lock:
            for version, body in await self._rows_after(self._log.version):
                self._add(self._stored(version, body))

    async def _wait(self, event: asyncio.Event, after: int) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives as its timeout fires, and the watcher would never stop
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_interval):
                await event.wait()


# -- SQLite ------------------------------------------------------------------------------------


class SQLiteConfigStoreConfig(BaseModel):
    """Configuration of `SQLiteConfigStore` (``sqlite`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    table: str = "pc_config"
    schemas: dict[str, str] = Field(default_factory=dict)
    max_value_bytes: int = Field(DEFAULT_MAX_VALUE_BYTES, gt=0)
    poll_interval: float = Field(0.5, gt=0)
    busy_timeout: float = Field(30.0, gt=0)


class SQLiteConfigStore(_SQLConfigStore, Configurable):
    """Config store in a SQLite database file (WAL mode): durable, on one machine; several
    processes may share the file (they learn of each other's changes by polling).

    A version is one transaction: after a crash it is there whole or not at all.
    """

    config_model: ClassVar[type[BaseModel]] = SQLiteConfigStoreConfig

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = "pc_config",
        schemas: Mapping[str, object] | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        poll_interval: float = 0.5,
        busy_timeout: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            table=table,
            schemas=schemas,
            max_value_bytes=max_value_bytes,
            poll_interval=poll_interval,
            wall_clock=wall_clock,
        )
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._file = SQLiteFile(
            self.path,
            busy_timeout=busy_timeout,
            setup=(
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=FULL",
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(version INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            ),
            thread_name="pc-sqlite-config",
            what="config store",
            port=PORT,
        )
        self._start_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteConfigStore(path={str(self.path)!r}, table={self.table!r})"

    async def start(self) -> None:
        """Open the database and create the table if missing; idempotent."""
        async with self._start_lock:
            if self._file.started:
                return
            self._check_open()
            await self._file.open()

    async def _ready(self) -> None:
        if not self._file.started:
            await self.start()

    def _select(self, version: int) -> list[tuple[int, str]]:
        return (
            self._file.db()
            .execute(
                f"SELECT version, body FROM {self.table} WHERE version > ? ORDER BY version",
                (version,),
            )
            .fetchall()
        )

    async def _rows_after(self, version: int) -> Sequence[tuple[int, str]]:
        return await self._file.call(self._select, version)

    def _write(self, draft: Draft) -> StoredSet:
        conn = self._file.db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                f"SELECT version, CASE WHEN json_valid(body) THEN json_extract(body, '$.at') "
                f"END FROM {self.table} ORDER BY version DESC LIMIT 1"
            ).fetchone()
            current = 0 if row is None else int(row[0])
            stored = draft.after(current, self._time_after(None if row is None else row[1]))
            conn.execute(
                f"INSERT INTO {self.table} (version, body) VALUES (?, ?)",
                (stored.version, encode_set(stored)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return stored

    async def _commit(self, draft: Draft) -> int:
        stored = await self._file.call(self._write, draft)
        await self._sync()
        return stored.version

    async def ping(self) -> None:
        await self._ready()
        await self._file.call(self._select, 2**62)

    async def _close(self) -> None:
        self._file.close()


# -- PostgreSQL ----------------------------------------------------------------------------------


class PostgresConfigStoreConfig(BaseModel):
    """Configuration of `PostgresConfigStore` (``postgres`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    table: str = "pc_config"
    schemas: dict[str, str] = Field(default_factory=dict)
    max_value_bytes: int = Field(DEFAULT_MAX_VALUE_BYTES, gt=0)
    poll_interval: float = Field(5.0, gt=0)
    lock_timeout: float = Field(30.0, gt=0)
    connect_timeout: float = Field(DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(DEFAULT_CALL_TIMEOUT, gt=0)


class PostgresConfigStore(_SQLConfigStore, Configurable):
    """Config store in PostgreSQL, shared by every process that uses the same table.

    Watchers are woken by LISTEN/NOTIFY on one listener connection per store (reconnected
    with backoff when it drops), with ``poll_interval`` as a safety net. One instance
    serves one event loop.

    Connections: one for commands, one listener. A command connection that the server
    closed is noticed before use and opened again; one that breaks during a call fails that
    call with UnavailableError (retryable) and is replaced by the next call. Opening a
    connection takes at most ``connect_timeout`` seconds, a call at most ``call_timeout``
    (waiting for the connection included); past either, UnavailableError.
    """

    config_model: ClassVar[type[BaseModel]] = PostgresConfigStoreConfig

    def __init__(
        self,
        url: str | SecretStr,
        *,
        table: str = "pc_config",
        schemas: Mapping[str, object] | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        poll_interval: float = 5.0,
        lock_timeout: float = 30.0,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            table=table,
            schemas=schemas,
            max_value_bytes=max_value_bytes,
            poll_interval=poll_interval,
            wall_clock=wall_clock,
        )
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        check_postgres_url(self._url.get_secret_value(), port=PORT)
        self._lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self._channel = f"{self.table}_config"[-63:]
        self._conn: Any = None
        self._conn_lock = asyncio.Lock()
        self._started = False
        self._listen_task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.reconnects = 0
        """How many times the listener connection was opened again after dropping."""

    def __repr__(self) -> str:
        return f"PostgresConfigStore(table={self.table!r}, url=**********)"

    async def _connect(self) -> Any:
        import psycopg

        conn = await connect(
            self._url.get_secret_value(), connect_timeout=self.connect_timeout, port=PORT
        )
        try:
            async with Deadline(conn, self.connect_timeout, port=PORT):
                await conn.execute(f"SET lock_timeout = '{int(self._lock_timeout * 1000)}ms'")
        except (psycopg.Error, UnavailableError) as exc:
            await conn.close()
            raise UnavailableError(
                f"cannot configure the PostgreSQL connection: {type(exc).__name__}", port=PORT
            ) from None
        return conn

    async def start(self) -> None:
        """Connect, create the table if missing and start listening; idempotent."""
        async with self._conn_lock:
            if self._started:
                return
            self._check_open()
            conn = await self._connect()
            await create_tables(
                conn,
                self.table,
                [
                    f"CREATE TABLE IF NOT EXISTS {self.table} "
                    "(version bigint PRIMARY KEY, body text NOT NULL)"
                ],
                seconds=self.call_timeout,
                what="config table",
                port=PORT,
            )
            self._conn = conn
            self._started = True
        self._listen_task = asyncio.get_running_loop().create_task(self._listen())
        await self._listening.wait()

    async def _ready(self) -> None:
        if not self._started:
            await self.start()

    @contextlib.asynccontextmanager
    async def _command(self) -> Any:
        """The command connection (opened again when it dropped), used by one call at a time
        and for at most ``call_timeout`` seconds; driver errors become UnavailableError."""
        import psycopg

        async with Deadline(None, self.call_timeout, port=PORT) as deadline, self._conn_lock:
            self._check_open()
            if self._conn is not None and is_dead(self._conn):
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None
            if self._conn is None:
                self._conn = await self._connect()
            deadline.conn = self._conn
            try:
                yield self._conn
            except psycopg.OperationalError as exc:
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None
                raise UnavailableError(
                    f"PostgreSQL connection lost: {type(exc).__name__}", port=PORT
                ) from exc
            except psycopg.Error as exc:
                raise UnavailableError(f"PostgreSQL failed: {exc}", port=PORT) from exc

    async def _rows_after(self, version: int) -> Sequence[tuple[int, str]]:
        async with self._command() as conn:
            cursor = await conn.execute(
                f"SELECT version, body FROM {self.table} WHERE version > %s ORDER BY version",
                (version,),
            )
            rows: list[tuple[int, str]] = await cursor.fetchall()
            return rows

    async def _commit(self, draft: Draft) -> int:
        async with self._command() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"pc:{self.table}",))
            cursor = await conn.execute(
                f'SELECT version, substring(body from \',"at":(\\d+),"rb":\')::bigint '
                f"FROM {self.table} ORDER BY version DESC LIMIT 1"
            )
            row = await cursor.fetchone()
            current = 0 if row is None else int(row[0])
            stored = draft.after(current, self._time_after(None if row is None else row[1]))
            await conn.execute(
                f"INSERT INTO {self.table} (version, body) VALUES (%s, %s)",
                (stored.version, encode_set(stored)),
            )
            await conn.execute("SELECT pg_notify(%s, %s)", (self._channel, str(stored.version)))
        await self._sync()
        return stored.version

    async def _listen(self) -> None:
        """Wake watchers on every NOTIFY; reconnect with backoff when the connection drops,
        then wake them anyway so that they catch up on what they may have missed."""
        import psycopg

        delay = 0.05
        while not self._is_closed():
            listener = None
            try:
                listener = await self._connect()
                await listener.execute(f'LISTEN "{self._channel}"')
                self._listening.set()
                self._notifier.notify()  # catch up on anything missed while away
                delay = 0.05
                async for _ in listener.notifies():
                    self._notifier.notify()
            except (psycopg.Error, UnavailableError, OSError):
                pass
            finally:
                if listener is not None:
                    with contextlib.suppress(Exception):
                        await listener.close()
            if self._is_closed():
                return
            self._listening.set()  # never keep start() waiting on a server that is down
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def ping(self) -> None:
        async with self._command() as conn:
            await conn.execute("SELECT 1")

    async def _close(self) -> None:
        task, self._listen_task = self._listen_task, None
        await stop_listening(task)
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
