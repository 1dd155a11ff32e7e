"""SnapshotStore on SQL: SQLite (embedded, one machine) and PostgreSQL (psycopg 3, shared).

Both keep one table ``(stream primary key, version, body)`` and save with one upsert whose
``WHERE`` keeps the higher version, so the database alone decides between concurrent savers
(no read-then-write race): a slow writer of an older state never replaces a newer one.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.snapshots import (
    DEFAULT_MAX_SNAPSHOT_BYTES,
    PORT,
    decode_snapshot,
    encode_snapshot,
    validate_stream,
)
from portfolio_core.adapters.sql._identifiers import check_identifier
from portfolio_core.adapters.sql._sqlite import SQLiteTableStore
from portfolio_core.adapters.sql._table_connection import TableConnection
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.snapshot_store import Snapshot, SnapshotStoreCapability

__all__ = [
    "PostgresSnapshotStore",
    "PostgresSnapshotStoreConfig",
    "SQLiteSnapshotStore",
    "SQLiteSnapshotStoreConfig",
]

T = TypeVar("T")

_CAPABILITIES = declare(SnapshotStoreCapability.PERSISTENT, SnapshotStoreCapability.SHARED)
"""What both SQL snapshot stores offer."""


# -- SQLite ------------------------------------------------------------------------------------


class SQLiteSnapshotStoreConfig(BaseModel):
    """Configuration of `SQLiteSnapshotStore` (``sqlite`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    table: str = "pc_snapshots"
    max_snapshot_bytes: int = Field(DEFAULT_MAX_SNAPSHOT_BYTES, gt=0)
    busy_timeout: float = Field(30.0, gt=0)


class SQLiteSnapshotStore(SQLiteTableStore, Configurable):
    """Snapshots in a SQLite database file (WAL mode), durable; several processes on one
    machine may share the file. May live in the event store's database file."""

    config_model: ClassVar[type[BaseModel]] = SQLiteSnapshotStoreConfig
    capabilities = _CAPABILITIES
    _what = "snapshot store"
    _thread_name = "pc-sqlite-snapshots"
    _port = PORT

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = "pc_snapshots",
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
        busy_timeout: float = 30.0,
    ) -> None:
        self.max_snapshot_bytes = max_snapshot_bytes
        super().__init__(path, table=table, busy_timeout=busy_timeout)

    def _schema(self) -> tuple[str, ...]:
        return (
            "PRAGMA journal_mode=WAL",
            f"CREATE TABLE IF NOT EXISTS {self.table} (stream TEXT PRIMARY KEY, "
            "version INTEGER NOT NULL, body TEXT NOT NULL)",
        )

    def _upsert(self, stream: str, version: int, body: str) -> bool:
        cursor = self._file.db().execute(
            f"INSERT INTO {self.table} (stream, version, body) VALUES (?, ?, ?) "
            "ON CONFLICT (stream) DO UPDATE SET version = excluded.version, body = excluded.body "
            f"WHERE excluded.version >= {self.table}.version",
            (stream, version, body),
        )
        return cursor.rowcount == 1

    def _select(self, stream: str) -> str | None:
        row = (
            self._file.db()
            .execute(f"SELECT body FROM {self.table} WHERE stream = ?", (stream,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def _delete(self, stream: str) -> None:
        self._file.db().execute(f"DELETE FROM {self.table} WHERE stream = ?", (stream,))

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


# -- PostgreSQL ----------------------------------------------------------------------------------


class PostgresSnapshotStoreConfig(BaseModel):
    """Configuration of `PostgresSnapshotStore` (``postgres`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    table: str = "pc_snapshots"
    max_snapshot_bytes: int = Field(DEFAULT_MAX_SNAPSHOT_BYTES, gt=0)


class PostgresSnapshotStore(Configurable):
    """Snapshots in PostgreSQL, shared by every process using the same table.

    One connection, used by one call at a time and opened again after it drops. One
    instance serves one event loop: a call from another loop raises UnavailableError
    (psycopg's async connections belong to the loop that opened them).
    """

    config_model: ClassVar[type[BaseModel]] = PostgresSnapshotStoreConfig
    capabilities = _CAPABILITIES

    def __init__(
        self,
        url: str | SecretStr,
        *,
        table: str = "pc_snapshots",
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
    ) -> None:
        self.table = check_identifier(table)
        self.max_snapshot_bytes = max_snapshot_bytes
        self._db = TableConnection(
            url if isinstance(url, SecretStr) else SecretStr(url),
            table=self.table,
            create=f"CREATE TABLE IF NOT EXISTS {self.table} (stream text PRIMARY KEY, "
            "version bigint NOT NULL, body text NOT NULL)",
            owner="PostgresSnapshotStore",
            what="snapshot store",
            port=PORT,
        )

    def __repr__(self) -> str:
        return f"PostgresSnapshotStore(table={self.table!r}, url=**********)"

    async def start(self) -> None:
        """Connect and create the table if missing; idempotent."""
        async with self._db.use():
            pass

    async def save(self, snapshot: Snapshot) -> bool:
        stream, version, body = encode_snapshot(snapshot, self.max_snapshot_bytes)
        async with self._db.use() as conn:
            cursor = await conn.execute(
                f"INSERT INTO {self.table} AS s (stream, version, body) VALUES (%s, %s, %s) "
                "ON CONFLICT (stream) DO UPDATE SET version = excluded.version, "
                "body = excluded.body WHERE excluded.version >= s.version",
                (stream, version, body),
            )
            return bool(cursor.rowcount == 1)

    async def load(self, stream: str) -> Snapshot | None:
        validate_stream(stream)
        async with self._db.use() as conn:
            cursor = await conn.execute(
                f"SELECT body FROM {self.table} WHERE stream = %s", (stream,)
            )
            row = await cursor.fetchone()
        return None if row is None else decode_snapshot(stream, row[0], self.table)

    async def delete(self, stream: str) -> None:
        validate_stream(stream)
        async with self._db.use() as conn:
            await conn.execute(f"DELETE FROM {self.table} WHERE stream = %s", (stream,))

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        await self._db.close()
