"""ProjectionStore on SQL: SQLite and PostgreSQL, transactional (exactly-once effects).

Both keep one row per projection ``(name, checkpoint, owner, token, expires_at)``. A commit
is one transaction: lock the projection's row (SQLite: ``BEGIN IMMEDIATE``, the database's
write lock; PostgreSQL: ``SELECT ... FOR UPDATE``), check the lease, run the effect on the
same transaction, move the checkpoint, commit. A claim by another runner waits for that lock,
so it sees either the whole batch (effect and checkpoint) or none of it: no event's effect is
ever applied twice, whatever crashes or lease losses happen.

What the effect receives:
  * SQLite: a `SQLiteTransaction` (``await tx.execute(sql, params)`` returning the
    fetched rows, ``await tx.executemany(sql, rows)``), ``?`` placeholders; the read model
    lives in the same database file.
  * PostgreSQL: the psycopg ``AsyncConnection`` inside the transaction (``await
    tx.execute(sql, params)`` returns a cursor), ``%s`` placeholders.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.projections import (
    PORT,
    Held,
    check_advance,
    decide_claim,
    lease_lost,
    validate_lease,
    validate_name,
    validate_owner,
    validate_position,
    validate_ttl,
)
from portfolio_core.adapters.sql._identifiers import check_identifier
from portfolio_core.adapters.sql._sqlite import SQLiteTableStore
from portfolio_core.adapters.sql._table_connection import TableConnection
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import UnavailableError
from portfolio_core.ports.projection_store import Effect, Lease, ProjectionStoreCapability

__all__ = [
    "PostgresProjectionStore",
    "PostgresProjectionStoreConfig",
    "SQLiteProjectionStore",
    "SQLiteProjectionStoreConfig",
    "SQLiteTransaction",
]

T = TypeVar("T")

_CAPABILITIES = declare(
    ProjectionStoreCapability.TRANSACTIONAL,
    ProjectionStoreCapability.PERSISTENT,
    ProjectionStoreCapability.SHARED,
)
"""What both SQL projection stores offer."""


# -- SQLite ------------------------------------------------------------------------------------


class SQLiteProjectionStoreConfig(BaseModel):
    """Configuration of `SQLiteProjectionStore` (``sqlite`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    table: str = "pc_projections"
    busy_timeout: float = Field(30.0, gt=0)


class SQLiteTransaction:
    """The open transaction a SQLite commit hands to the effect."""

    def __init__(self, store: SQLiteProjectionStore) -> None:
        self._store = store
        self.open = True

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in the transaction; the rows it returns (if any)."""
        if not self.open:
            raise UnavailableError("the transaction is over", port=PORT)
        return await self._store._call(self._store._fetch, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each of ``rows`` in the transaction."""
        if not self.open:
            raise UnavailableError("the transaction is over", port=PORT)
        await self._store._call(self._store._many, sql, list(rows))


class SQLiteProjectionStore(SQLiteTableStore, Configurable):
    """Projection checkpoints and leases in a SQLite file, next to the read models.

    Leases expire by this machine's clock (several processes on one machine share it).
    """

    config_model: ClassVar[type[BaseModel]] = SQLiteProjectionStoreConfig
    capabilities = _CAPABILITIES
    _what = "projection store"
    _thread_name = "pc-sqlite-projections"
    _port = PORT

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = "pc_projections",
        busy_timeout: float = 30.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(path, table=table, busy_timeout=busy_timeout)
        self._now = clock or time.time
        self._lock = asyncio.Lock()

    def _schema(self) -> tuple[str, ...]:
        return (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            f"CREATE TABLE IF NOT EXISTS {self.table} (name TEXT PRIMARY KEY, "
            "checkpoint INTEGER NOT NULL DEFAULT 0, owner TEXT, "
            "token INTEGER NOT NULL DEFAULT 0, expires_at REAL NOT NULL DEFAULT 0)",
        )

    def _db(self) -> sqlite3.Connection:
        return self._file.db()

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._db().execute(sql, params).fetchall()

    def _many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        self._db().executemany(sql, rows)

    def _row(self, name: str) -> tuple[int, Held] | None:
        row = (
            self._db()
            .execute(
                f"SELECT checkpoint, owner, token, expires_at FROM {self.table} WHERE name = ?",
                (name,),
            )
            .fetchone()
        )
        return None if row is None else (int(row[0]), Held(row[1], int(row[2]), float(row[3])))

    def _claim(self, name: str, owner: str, ttl: float) -> Held | None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = self._row(name)
            held = decide_claim(None if row is None else row[1], owner, self._now(), ttl)
            if held is not None:
                db.execute(
                    f"INSERT INTO {self.table} (name, owner, token, expires_at) VALUES "
                    "(?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "token = excluded.token, expires_at = excluded.expires_at",
                    (name, *held),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return held

    def _release(self, lease: Lease) -> None:
        self._db().execute(
            f"UPDATE {self.table} SET owner = NULL, expires_at = 0 "
            "WHERE name = ? AND owner = ? AND token = ?",
            (lease.projection, lease.owner, lease.token),
        )

    def _begin_commit(self, lease: Lease, position: int) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = self._row(lease.projection)
            error = lease_lost(lease, None if row is None else row[1], self._now())
            if error is not None or row is None:
                raise error or AssertionError("unreachable: a held lease has a row")
            check_advance(lease.projection, row[0], position)
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _finish_commit(self, name: str, position: int) -> None:
        db = self._db()
        try:
            db.execute(f"UPDATE {self.table} SET checkpoint = ? WHERE name = ?", (position, name))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _rollback(self) -> None:
        self._db().execute("ROLLBACK")

    async def claim(self, projection: str, owner: str, ttl: float) -> Lease | None:
        validate_name(projection)
        validate_owner(owner)
        seconds = validate_ttl(ttl)
        async with self._lock:
            await self.start()
            held = await self._call(self._claim, projection, owner, seconds)
        return None if held is None else Lease(projection, owner, held.token, held.expires_at)

    async def release(self, lease: Lease) -> None:
        validate_lease(lease)
        async with self._lock:
            await self.start()
            await self._call(self._release, lease)

    async def checkpoint(self, projection: str) -> int:
        validate_name(projection)
        async with self._lock:
            await self.start()
            row = await self._call(self._row, projection)
        return 0 if row is None else row[0]

    async def commit(self, lease: Lease, position: int, effect: Effect | None = None) -> None:
        validate_lease(lease)
        validate_position(position)
        async with self._lock:
            await self.start()
            await self._call(self._begin_commit, lease, position)
            tx = SQLiteTransaction(self)
            try:
                if effect is not None:
                    await effect(tx)
                tx.open = False
            except BaseException:
                tx.open = False
                with contextlib.suppress(Exception):
                    await self._call(self._rollback)
                raise
            await self._call(self._finish_commit, lease.projection, position)

    async def reset(self, projection: str) -> None:
        validate_name(projection)
        async with self._lock:
            await self.start()
            await self._call(
                self._fetch,
                f"UPDATE {self.table} SET checkpoint = 0 WHERE name = ?",
                (projection,),
            )


# -- PostgreSQL ----------------------------------------------------------------------------------


class PostgresProjectionStoreConfig(BaseModel):
    """Configuration of `PostgresProjectionStore` (``postgres`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    table: str = "pc_projections"


class PostgresProjectionStore(Configurable):
    """Projection checkpoints and leases in PostgreSQL, shared by every process.

    Leases expire by the server's clock (``clock_timestamp()``), so runners on machines
    whose clocks disagree still agree on who holds a lease. One connection, one call at a
    time; one instance serves one event loop (a call from another loop raises
    UnavailableError saying so).
    """

    config_model: ClassVar[type[BaseModel]] = PostgresProjectionStoreConfig
    capabilities = _CAPABILITIES

    def __init__(self, url: str | SecretStr, *, table: str = "pc_projections") -> None:
        self.table = check_identifier(table)
        self._db = TableConnection(
            url if isinstance(url, SecretStr) else SecretStr(url),
            table=self.table,
            create=f"CREATE TABLE IF NOT EXISTS {self.table} (name text PRIMARY KEY, "
            "checkpoint bigint NOT NULL DEFAULT 0, owner text, "
            "token bigint NOT NULL DEFAULT 0, "
            "expires_at double precision NOT NULL DEFAULT 0)",
            owner="PostgresProjectionStore",
            what="projection store",
            port=PORT,
        )

    def __repr__(self) -> str:
        return f"PostgresProjectionStore(table={self.table!r}, url=**********)"

    async def start(self) -> None:
        """Connect and create the table if missing; idempotent."""
        async with self._db.use():
            pass

    async def _locked_row(self, conn: Any, name: str) -> tuple[float, tuple[int, Held] | None]:
        cursor = await conn.execute(
            "SELECT extract(epoch FROM clock_timestamp())::float8, checkpoint, owner, token, "
            f"expires_at FROM {self.table} WHERE name = %s FOR UPDATE",
            (name,),
        )
        row = await cursor.fetchone()
        if row is None:
            return 0.0, None
        now, checkpoint, owner, token, expires = row
        return float(now), (int(checkpoint), Held(owner, int(token), float(expires)))

    async def claim(self, projection: str, owner: str, ttl: float) -> Lease | None:
        validate_name(projection)
        validate_owner(owner)
        seconds = validate_ttl(ttl)
        async with self._db.use() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {self.table} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                (projection,),
            )
            now, row = await self._locked_row(conn, projection)
            held = decide_claim(None if row is None else row[1], owner, now, seconds)
            if held is None:
                return None
            await conn.execute(
                f"UPDATE {self.table} SET owner = %s, token = %s, expires_at = %s WHERE name = %s",
                (*held, projection),
            )
        return Lease(projection, owner, held.token, held.expires_at)

    async def release(self, lease: Lease) -> None:
        validate_lease(lease)
        async with self._db.use() as conn:
            await conn.execute(
                f"UPDATE {self.table} SET owner = NULL, expires_at = 0 "
                "WHERE name = %s AND owner = %s AND token = %s",
                (lease.projection, lease.owner, lease.token),
            )

    async def checkpoint(self, projection: str) -> int:
        validate_name(projection)
        async with self._db.use() as conn:
            cursor = await conn.execute(
                f"SELECT checkpoint FROM {self.table} WHERE name = %s", (projection,)
            )
            row = await cursor.fetchone()
        return 0 if row is None else int(row[0])

    async def commit(self, lease: Lease, position: int, effect: Effect | None = None) -> None:
        validate_lease(lease)
        validate_position(position)
        async with self._db.use() as conn, conn.transaction():
            now, row = await self._locked_row(conn, lease.projection)
            error = lease_lost(lease, None if row is None else row[1], now)
            if error is not None or row is None:
                raise error or AssertionError("unreachable: a held lease has a row")
            check_advance(lease.projection, row[0], position)
            if effect is not None:
                await effect(conn)
            await conn.execute(
                f"UPDATE {self.table} SET checkpoint = %s WHERE name = %s",
                (position, lease.projection),
            )

    async def reset(self, projection: str) -> None:
        validate_name(projection)
        async with self._db.use() as conn:
            await conn.execute(
                f"UPDATE {self.table} SET checkpoint = 0 WHERE name = %s", (projection,)
            )

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        await self._db.close()
