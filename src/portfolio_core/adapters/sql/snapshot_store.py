"""SnapshotStore on SQL: SQLite (embedded, one machine) and PostgreSQL (psycopg 3, shared).

Both keep one table ``(stream primary key, version, body)`` and save with one upsert whose
``WHERE`` keeps the higher version, so the database alone decides between concurrent savers
(no read-then-write race): a slow writer of an older state never replaces a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.snapshots import (
    DEFAULT_MAX_SNAPSHOT_BYTES,
    PORT,
    decode_snapshot,
    encode_snapshot,
    validate_stream,
)
from portfolio_core.adapters.sql._identifiers import check_identifier
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import UnavailableError
from portfolio_core.ports.snapshot_store import Snapshot, SnapshotStoreCapability

__all__ = [
    "PostgresSnapshotStore",
    "PostgresSnapshotStoreConfig",
    "SQLiteSnapshotStore",
    "SQLiteSnapshotStoreConfig",
]

T = TypeVar("T")


# -- SQLite ------------------------------------------------------------------------------------


class SQLiteSnapshotStoreConfig(BaseModel):
    """Configuration of `SQLiteSnapshotStore` (``sqlite`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    table: str = "pc_snapshots"
    max_snapshot_bytes: int = Field(DEFAULT_MAX_SNAPSHOT_BYTES, gt=0)
    busy_timeout: float = Field(30.0, gt=0)


class SQLiteSnapshotStore:
    """Snapshots in a SQLite database file (WAL mode), durable; several processes on one
    machine may share the file. May live in the event store's database file."""

    config_model: ClassVar[type[BaseModel]] = SQLiteSnapshotStoreConfig
    capabilities = declare(SnapshotStoreCapability.PERSISTENT, SnapshotStoreCapability.SHARED)

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = "pc_snapshots",
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.table = check_identifier(table)
        self.max_snapshot_bytes = max_snapshot_bytes
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    def from_config(cls, config: SQLiteSnapshotStoreConfig) -> Self:
        return cls(**config.model_dump())

    def __repr__(self) -> str:
        return f"SQLiteSnapshotStore(path={str(self.path)!r}, table={self.table!r})"

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (stream TEXT PRIMARY KEY, "
                "version INTEGER NOT NULL, body TEXT NOT NULL)"
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def start(self) -> None:
        """Open the database and create the table if missing; idempotent."""
        async with self._start_lock:
            if self._closed:
                raise UnavailableError("snapshot store is closed", port=PORT)
            if self._executor is not None:
                return
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="pc-sqlite-snapshots")
            try:
                await self._call(self._open)
            except BaseException:
                executor, self._executor = self._executor, None
                executor.shutdown(wait=False)
                raise

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            await self.start()
        executor = self._executor
        if executor is None:  # pragma: no cover - closed while starting
            raise UnavailableError("snapshot store is closed", port=PORT)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except sqlite3.Error as exc:
            raise UnavailableError(f"SQLite failed: {exc}", port=PORT) from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise UnavailableError("snapshot store is closed", port=PORT)
        return self._conn

    def _upsert(self, stream: str, version: int, body: str) -> bool:
        cursor = self._db().execute(
            f"INSERT INTO {self.table} (stream, version, body) VALUES (?, ?, ?) "
            "ON CONFLICT (stream) DO UPDATE SET version = excluded.version, body = excluded.body "
            f"WHERE excluded.version >= {self.table}.version",
            (stream, version, body),
        )
        return cursor.rowcount == 1

    def _select(self, stream: str) -> str | None:
        row = (
            self._db()
            .execute(f"SELECT body FROM {self.table} WHERE stream = ?", (stream,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def _delete(self, stream: str) -> None:
        self._db().execute(f"DELETE FROM {self.table} WHERE stream = ?", (stream,))

    async def save(self, snapshot: Snapshot) -> bool:
        encoded = encode_snapshot(snapshot, self.max_snapshot_bytes)
        return await self._call(self._upsert, *encoded)

    async def load(self, stream: str) -> Snapshot | None:
        validate_stream(stream)
        body = await self._call(self._select, stream)
        return None if body is None else decode_snapshot(stream, body, self.table)

    async def delete(self, stream: str) -> None:
        validate_stream(stream)
        await self._call(self._delete, stream)

    async def aclose(self) -> None:
        """Close the database; idempotent."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            conn, self._conn = self._conn, None
            if conn is not None:
                executor.submit(conn.close)
            executor.shutdown(wait=True)


# -- PostgreSQL ----------------------------------------------------------------------------------


class PostgresSnapshotStoreConfig(BaseModel):
    """Configuration of `PostgresSnapshotStore` (``postgres`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    table: str = "pc_snapshots"
    max_snapshot_bytes: int = Field(DEFAULT_MAX_SNAPSHOT_BYTES, gt=0)


class PostgresSnapshotStore:
    """Snapshots in PostgreSQL, shared by every process using the same table.

    One connection, used by one call at a time and opened again after it drops. One
    instance serves one event loop: a call from another loop raises UnavailableError
    (psycopg's async connections belong to the loop that opened them).
    """

    config_model: ClassVar[type[BaseModel]] = PostgresSnapshotStoreConfig
    capabilities = declare(SnapshotStoreCapability.PERSISTENT, SnapshotStoreCapability.SHARED)

    def __init__(
        self,
        url: str | SecretStr,
        *,
        table: str = "pc_snapshots",
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
    ) -> None:
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        self.table = check_identifier(table)
        self.max_snapshot_bytes = max_snapshot_bytes
        self._conn: Any = None
        self._lock = asyncio.Lock()  # binds to the loop that first waits on it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._created = False
        self._closed = False

    @classmethod
    def from_config(cls, config: PostgresSnapshotStoreConfig) -> Self:
        return cls(**config.model_dump())

    def __repr__(self) -> str:
        return f"PostgresSnapshotStore(table={self.table!r}, url=**********)"

    def _own_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise UnavailableError(
                "this PostgresSnapshotStore serves the event loop that first used it; make "
                "one instance per event loop",
                port=PORT,
            )
        return self._lock

    @contextlib.asynccontextmanager
    async def _connection(self) -> Any:
        import psycopg

        async with self._own_lock():
            if self._closed:
                raise UnavailableError("snapshot store is closed", port=PORT)
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._url.get_secret_value(), autocommit=True
                    )
                if not self._created:
                    async with self._conn.transaction():
                        await self._conn.execute(
                            "SELECT pg_advisory_xact_lock(hashtext(%s))",
                            (f"pc-ddl:{self.table}",),
                        )
                        await self._conn.execute(
                            f"CREATE TABLE IF NOT EXISTS {self.table} (stream text PRIMARY "
                            "KEY, version bigint NOT NULL, body text NOT NULL)"
                        )
                    self._created = True
                yield self._conn
            except psycopg.OperationalError as exc:
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                raise UnavailableError(
                    f"PostgreSQL connection lost: {type(exc).__name__}", port=PORT
                ) from exc
            except psycopg.Error as exc:
                raise UnavailableError(f"PostgreSQL failed: {exc}", port=PORT) from exc

    async def start(self) -> None:
        """Connect and create the table if missing; idempotent."""
        async with self._connection():
            pass

    async def save(self, snapshot: Snapshot) -> bool:
        stream, version, body = encode_snapshot(snapshot, self.max_snapshot_bytes)
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"INSERT INTO {self.table} AS s (stream, version, body) VALUES (%s, %s, %s) "
                "ON CONFLICT (stream) DO UPDATE SET version = excluded.version, "
                "body = excluded.body WHERE excluded.version >= s.version",
                (stream, version, body),
            )
            return bool(cursor.rowcount == 1)

    async def load(self, stream: str) -> Snapshot | None:
        validate_stream(stream)
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"SELECT body FROM {self.table} WHERE stream = %s", (stream,)
            )
            row = await cursor.fetchone()
        return None if row is None else decode_snapshot(stream, row[0], self.table)

    async def delete(self, stream: str) -> None:
        validate_stream(stream)
        async with self._connection() as conn:
            await conn.execute(f"DELETE FROM {self.table} WHERE stream = %s", (stream,))

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
