"""SqliteCache and PostgresCache against real databases: persistence, expiry, isolation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from portfolio_core.adapters.sql.cache import (
    PostgresCache,
    PostgresCacheConfig,
    SqlCache,
    SqliteCache,
    SqliteCacheConfig,
)
from portfolio_core.ports import Cache, InvalidInputError, supports
from portfolio_core.testing.contracts.cache import CacheContract


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_sqlite_persists_and_expires(tmp_path: Path) -> None:
    clock = Clock()
    path = str(tmp_path / "c.db")
    cache = SqliteCache(path, clock=clock, sweep_interval=0)
    assert isinstance(cache, Cache)
    await cache.put("k", [1, {"a": None}])
    await cache.put("t", 1, ttl=5)
    await cache.aclose()
    again = SqliteCache.from_config(SqliteCacheConfig(path=path))
    again._clock = clock
    assert await again.get("k") == [1, {"a": None}]
    clock.now += 6
    assert not await again.exists("t")
    assert await again.count() == 1
    assert await again.sweep() == 1
    await again.aclose()
    await again.aclose()


async def test_sqlite_rejects_memory_and_bad_table() -> None:
    with pytest.raises(InvalidInputError):
        SqliteCache(":memory:")
    with pytest.raises(InvalidInputError):
        SqlCache("sqlite:///x.db", table="x; drop table y")


async def test_sqlite_put_many_bad_input_stores_nothing(tmp_path: Path) -> None:
    cache = SqliteCache(str(tmp_path / "c.db"))
    with pytest.raises(InvalidInputError):
        await cache.put_many({"a": 1, "": 2})
    assert await cache.count() == 0
    await cache.aclose()


async def test_postgres_roundtrip_hides_password(postgres_url: str, unique_name: str) -> None:
    cache = PostgresCache.from_config(
        PostgresCacheConfig(url=SecretStr(postgres_url), table=unique_name)
    )
    assert supports(cache, "cache.shared")
    try:
        await cache.start()
        await cache.put_many({"a": 1, "b": {"x": "y"}}, ttl=60)
        assert await cache.get_many(["a", "b", "c"]) == {"a": 1, "b": {"x": "y"}}
        other = PostgresCache(postgres_url, table=unique_name)
        assert await other.get("b") == {"x": "y"}
        await other.aclose()
        assert "secret" not in repr(PostgresCache("postgresql://u:secret@h/db"))
    finally:
        await cache.drop()
        await cache.aclose()


class TestSqliteCacheContract(CacheContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Any:
        def make(clock: Any, tenant_scoped: bool = False) -> SqliteCache:
            # one database, a fresh namespace per adapter: independence comes from namespacing
            return SqliteCache(
                str(tmp_path / "cache.db"),
                namespace=uuid.uuid4().hex[:12],
                clock=clock,
                tenant_scoped=tenant_scoped,
            )

        return make


class TestPostgresCacheContract(CacheContract):
    @pytest.fixture
    def make_adapter(self, postgres_url: str, unique_name: str) -> Iterator[Any]:
        def make(clock: Any, tenant_scoped: bool = False) -> PostgresCache:
            return PostgresCache(
                postgres_url,
                table=unique_name,
                namespace=uuid.uuid4().hex[:12],
                clock=clock,
                tenant_scoped=tenant_scoped,
                sweep_interval=0,
            )

        yield make

        async def drop() -> None:
            cache = PostgresCache(postgres_url, table=unique_name)
            await cache.drop()
            await cache.aclose()

        asyncio.run(drop())


async def test_writes_sweep_expired_rows_every_interval(tmp_path: Path) -> None:
    clock = Clock()
    cache = SqliteCache(str(tmp_path / "c.db"), clock=clock, sweep_interval=10)
    await cache.put("old", 1, ttl=1)
    clock.now += 11
    await cache.put("new", 2)  # this write sweeps
    assert await cache.sweep() == 0, "the write did not sweep the expired row"
    assert await cache.keys() == ["new"]
    await cache.aclose()
