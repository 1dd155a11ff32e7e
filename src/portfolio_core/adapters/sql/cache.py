"""Cache in a SQL table through SQLAlchemy Core: SQLite by default, PostgreSQL for sharing."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from portfolio_core.adapters._shared.cache_keys import (
    check_items,
    check_key,
    check_namespace,
    check_ttl,
    scope,
    tenant_ttl,
)
from portfolio_core.adapters._shared.codec import JsonCodec
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.urls import check_url, display_url
from portfolio_core.adapters.sql._connections import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    check_postgres_url,
    is_dead,
    sever,
)
from portfolio_core.adapters.sql._integrity import (
    DAMAGED_TEXT,
    IntegrityCheck,
    check_statement,
    refuse_damaged,
)
from portfolio_core.ports.cache import CacheCapability, Codec
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import CorruptDataError, InvalidInputError, UnavailableError

__all__ = [
    "PostgresCache",
    "PostgresCacheConfig",
    "SqlCache",
    "SqliteCache",
    "SqliteCacheConfig",
]

T = TypeVar("T")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_UNSCOPED = ""  # tenant column value for an unscoped adapter; tenant ids are never empty


def _table(metadata: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(512), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True, index=True),
    )


class SqlCache(Configurable):
    """Items as rows ``(namespace, tenant, key, value, expires_at)`` of one table.

    Expiry is checked on every read (an expired row is never returned) and expired rows are
    deleted by `sweep`, which also runs on writes at most every ``sweep_interval``
    seconds. Expiry uses wall-clock time by default (``clock=time.time``) so it holds across
    restarts and processes. ``start()`` creates the table if missing. Queries run in worker
    threads through a synchronous SQLAlchemy engine (no async driver needed). Driver errors
    become `UnavailableError`; the URL's password never appears in reprs or errors.

    On a server (PostgreSQL), a pooled connection that the server closed is noticed when it
    is taken from the pool (no round trip) and replaced; one that breaks during a call fails
    that call with UnavailableError and is replaced by the next. Opening a connection takes
    at most ``connect_timeout`` seconds and a call at most ``call_timeout`` (the connection
    is then shut down and the call raises UnavailableError): a server that accepts and stays
    silent cannot hang a caller. Neither applies to SQLite, whose waits are bounded by its
    busy timeout.
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        CacheCapability.TTL,
        CacheCapability.PERSISTENT,
        CacheCapability.ENUMERATE,
        CacheCapability.TENANT_SCOPED,
    )

    def __init__(
        self,
        url: str | SecretStr = "sqlite:///portfolio-cache.db",
        *,
        table: str = "portfolio_cache",
        namespace: str = "default",
        tenant_scoped: bool = False,
        default_ttl: float | None = None,
        sweep_interval: float = 60.0,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
        integrity_check: IntegrityCheck = "full",
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        if not _TABLE.match(table):
            raise InvalidInputError("table must be a plain SQL identifier", field="table")
        raw = check_url(url.get_secret_value() if isinstance(url, SecretStr) else url, port="Cache")
        if raw.startswith(("postgresql://", "postgres://")):
            raw = "postgresql+psycopg://" + raw.split("://", 1)[1]
        self._url = raw
        self.table_name = table
        self.namespace = check_namespace(namespace)
        self.tenant_scoped = tenant_scoped
        self.default_ttl = check_ttl(default_ttl)
        self.sweep_interval = sweep_interval
        self._codec: Codec = codec if codec is not None else JsonCodec()
        self._clock = clock
        self._metadata = sa.MetaData()
        self._t = _table(self._metadata, table)
        self._engine: Engine | None = None
        self._last_sweep = clock()
        self._start_lock = asyncio.Lock()
        self._integrity = check_statement(integrity_check)
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self._server = not raw.startswith("sqlite")

    def __repr__(self) -> str:
        safe = display_url(self._url)
        return f"{type(self).__name__}(url={safe!r}, table={self.table_name!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def _make_engine(self) -> Engine:
        try:
            url = sa.engine.make_url(self._url)
        except (sa.exc.ArgumentError, ValueError):
            raise InvalidInputError(
                "url is not a valid database URL (not shown: it may hold a password)",
                field="url",
                port="Cache",
            ) from None
        if url.get_backend_name() == "sqlite":
            return sa.create_engine(url, connect_args={"timeout": 30})
        engine = sa.create_engine(
            url,
            pool_size=5,
            pool_timeout=self.call_timeout,
            # libpq counts whole seconds, at least 2; the call deadline bounds it anyway
            connect_args={"connect_timeout": max(2, math.ceil(self.connect_timeout))},
        )
        sa.event.listen(engine, "checkout", _replace_if_dead)
        return engine

    def _prepare(self, engine: Engine) -> None:
        if engine.dialect.name == "sqlite" and self._integrity is not None:
            with engine.connect() as conn:  # a damaged file could silently lose rows
                rows = conn.exec_driver_sql(self._integrity).fetchall()
            refuse_damaged(rows, display_url(self._url), "Cache")
        self._metadata.create_all(engine)

    async def start(self) -> None:
        """Connect and create the table if it does not exist. Idempotent.

        A SQLite database is checked first (``integrity_check``: ``full``, ``quick`` or
        ``off``): a damaged one raises CorruptDataError and is left unchanged."""
        await self._ensure()

    async def _ensure(self) -> Engine:
        if self._engine is not None:
            return self._engine
        async with self._start_lock:
            if self._engine is None:
                engine = self._make_engine()
                try:
                    await self._in_thread(
                        lambda _in_use: self._prepare(engine),
                        self.connect_timeout + self.call_timeout,
                    )
                except UnavailableError:
                    engine.dispose()
                    raise
                except sa.exc.SQLAlchemyError as exc:
                    engine.dispose()
                    raise UnavailableError(
                        f"cannot prepare the cache table: {type(exc).__name__}"
                    ) from exc
                except CorruptDataError:
                    engine.dispose()
                    raise
                except DAMAGED_TEXT as exc:
                    engine.dispose()
                    raise CorruptDataError(
                        "the cache database holds text that is not UTF-8: it is damaged",
                        port="Cache",
                    ) from exc
                self._engine = engine
        return self._engine

    async def aclose(self) -> None:
        """Release the connection pool. Idempotent."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.dispose)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute(sa.text("SELECT 1")))

    async def drop(self) -> None:
        """Drop the cache table (every namespace in it)."""
        engine = await self._ensure()
        await asyncio.to_thread(self._t.drop, engine, True)

    async def _in_thread(self, fn: Callable[[list[Any]], T], seconds: float) -> T:
        """``fn(in_use)`` in a worker thread; ``fn`` adds the driver connection it uses to
        ``in_use``. On a server, past ``seconds`` that connection is shut down (the thread's
        wait ends with an error) and UnavailableError is raised."""
        in_use: list[Any] = []
        task = asyncio.ensure_future(asyncio.to_thread(fn, in_use))
        task.add_done_callback(_retrieve)  # its error is reported below, or nobody waits
        if not self._server:
            return await task
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if done:
            return task.result()
        for conn in in_use:
            sever(conn)
        await asyncio.wait({task}, timeout=1.0)  # let the thread see it, if it can
        raise UnavailableError(
            f"the cache server did not answer within {seconds:g} s", port="Cache"
        )

    async def _run(self, work: Callable[[sa.Connection], Any]) -> Any:
        engine = await self._ensure()
        server = self._server

        def txn(in_use: list[Any]) -> Any:
            with engine.begin() as conn:
                if server:
                    in_use.append(conn.connection.dbapi_connection)
                return work(conn)

        try:
            return await self._in_thread(txn, self.call_timeout)
        except sa.exc.SQLAlchemyError as exc:
            raise UnavailableError(f"cache query failed: {type(exc).__name__}") from exc
        except DAMAGED_TEXT as exc:
            raise CorruptDataError(
                "the cache database holds text that is not UTF-8: it is damaged", port="Cache"
            ) from exc

    # -- helpers -----------------------------------------------------------------------------------

    def _where(self, tenant: str | None) -> sa.ColumnElement[bool]:
        t = self._t.c
        return sa.and_(
            t.namespace == self.namespace, t.tenant == (_UNSCOPED if tenant is None else tenant)
        )

    def _live(self, now: float) -> sa.ColumnElement[bool]:
        t = self._t.c
        return sa.or_(t.expires_at.is_(None), t.expires_at > now)

    def _ttl(self, ttl: float | None) -> float | None:
        ttl = tenant_ttl(check_ttl(ttl), self.tenant_scoped)
        return ttl if ttl is not None else self.default_ttl

    def _upsert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        dialect = conn.dialect.name
        insert: Any
        if dialect == "postgresql":
            insert = postgresql.insert(self._t)
        elif dialect == "sqlite":
            insert = sqlite.insert(self._t)
        else:
            raise UnavailableError(f"unsupported SQL dialect {dialect!r}")
        stmt = insert.on_conflict_do_update(
            index_elements=["namespace", "tenant", "key"],
            set_={"value": insert.excluded.value, "expires_at": insert.excluded.expires_at},
        )
        conn.execute(stmt, rows)

    def _maybe_sweep(self, conn: sa.Connection, now: float) -> None:
        if now - self._last_sweep >= self.sweep_interval:
            self._last_sweep = now
            conn.execute(sa.delete(self._t).where(self._t.c.expires_at <= now))

    # -- the port ----------------------------------------------------------------------------------

    async def get(self, key: str) -> Any | None:
        found = await self.get_many([key])
        return found.get(key)

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self.put_many({key: value}, ttl)

    async def delete(self, key: str) -> bool:
        where = sa.and_(self._where(scope(self.tenant_scoped)), self._t.c.key == check_key(key))
        now = self._clock()

        def work(conn: sa.Connection) -> bool:
            live = conn.execute(sa.delete(self._t).where(where, self._live(now))).rowcount
            conn.execute(sa.delete(self._t).where(where))
            return bool(live)

        result: bool = await self._run(work)
        return result

    async def clear(self) -> None:
        where = self._where(scope(self.tenant_scoped))
        await self._run(lambda conn: conn.execute(sa.delete(self._t).where(where)))

    async def exists(self, key: str) -> bool:
        where = sa.and_(self._where(scope(self.tenant_scoped)), self._t.c.key == check_key(key))
        now = self._clock()
        stmt = sa.select(self._t.c.key).where(where, self._live(now))
        row = await self._run(lambda conn: conn.execute(stmt).first())
        return row is not None

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        tenant = scope(self.tenant_scoped)
        if isinstance(keys, str):
            raise InvalidInputError("get_many takes a sequence of keys, not a str", field="keys")
        wanted = list(dict.fromkeys(check_key(k) for k in keys))
        if not wanted:
            return {}
        now = self._clock()
        t = self._t.c
        stmt = sa.select(t.key, t.value).where(
            self._where(tenant), t.key.in_(wanted), self._live(now)
        )
        rows = await self._run(lambda conn: conn.execute(stmt).all())
        return {row.key: self._codec.decode(row.value) for row in rows}

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        tenant = scope(self.tenant_scoped)
        check_items(items)
        ttl = self._ttl(ttl)
        now = self._clock()
        expires = None if ttl is None else now + ttl
        rows = [
            {
                "namespace": self.namespace,
                "tenant": _UNSCOPED if tenant is None else tenant,
                "key": key,
                "value": self._codec.encode(value),
                "expires_at": expires,
            }
            for key, value in items.items()
        ]

        def work(conn: sa.Connection) -> None:
            self._upsert(conn, rows)
            self._maybe_sweep(conn, now)

        await self._run(work)

    # -- optional parts ----------------------------------------------------------------------

    async def keys(self) -> list[str]:
        where = self._where(scope(self.tenant_scoped))
        stmt = sa.select(self._t.c.key).where(where, self._live(self._clock()))
        rows = await self._run(lambda conn: conn.execute(stmt).scalars().all())
        return list(rows)

    async def count(self) -> int:
        where = self._where(scope(self.tenant_scoped))
        stmt = (
            sa.select(sa.func.count()).select_from(self._t).where(where, self._live(self._clock()))
        )
        result: int = await self._run(lambda conn: conn.execute(stmt).scalar_one())
        return result

    async def sweep(self) -> int:
        """Delete every expired row of the table (all namespaces); returns how many."""
        now = self._clock()
        self._last_sweep = now
        stmt = sa.delete(self._t).where(self._t.c.expires_at <= now)
        result: int = await self._run(lambda conn: conn.execute(stmt).rowcount)
        return result


def _replace_if_dead(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout: a connection the server closed is replaced (SQLAlchemy retries the
    checkout with a new one), found without a round trip."""
    if is_dead(dbapi_connection):
        raise sa.exc.DisconnectionError("the server closed this connection")


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class SqliteCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "portfolio-cache.db"
    table: str = "portfolio_cache"
    namespace: str = "default"
    tenant_scoped: bool = False
    default_ttl: float | None = Field(default=None, gt=0)
    sweep_interval: float = Field(default=60.0, ge=0)
    integrity_check: IntegrityCheck = "full"


class SqliteCache(SqlCache):
    """The embedded default: a SQLite file at ``path`` (``":memory:"`` is refused: each
    worker thread would see its own empty database)."""

    config_model: ClassVar[type[BaseModel]] = SqliteCacheConfig

    def __init__(self, path: str = "portfolio-cache.db", **options: Any) -> None:
        if path == ":memory:" or not path:
            raise InvalidInputError("SqliteCache needs a file path", field="path")
        super().__init__(f"sqlite:///{path}", **options)
        self.path = path


class PostgresCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    table: str = "portfolio_cache"
    namespace: str = "default"
    tenant_scoped: bool = False
    default_ttl: float | None = Field(default=None, gt=0)
    sweep_interval: float = Field(default=60.0, ge=0)
    connect_timeout: float = Field(default=DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(default=DEFAULT_CALL_TIMEOUT, gt=0)


class PostgresCache(SqlCache):
    """Shared by every process that reaches the server at ``url`` (``postgresql://...``)."""

    capabilities: ClassVar[frozenset[str]] = SqlCache.capabilities | {CacheCapability.SHARED}
    config_model: ClassVar[type[BaseModel]] = PostgresCacheConfig

    def __init__(self, url: str | SecretStr, **options: Any) -> None:
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        check_postgres_url(raw, port="Cache")
        super().__init__(url, **options)
