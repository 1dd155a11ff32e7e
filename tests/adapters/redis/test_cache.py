"""RedisCache against a real server: sharing, native TTL, one round trip for bulk calls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from portfolio_core.adapters.redis.cache import RedisCache, RedisCacheConfig
from portfolio_core.ports import Cache, tenant_scope
from portfolio_core.testing.contracts.cache import CacheContract


async def _drop(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        async for name in client.scan_iter(match=prefix + "*", count=500):
            await client.unlink(name)
    finally:
        await client.aclose()


async def test_shared_between_instances_and_native_ttl(redis_url: str, unique_name: str) -> None:
    one = RedisCache.from_config(RedisCacheConfig(url=SecretStr(redis_url), namespace=unique_name))
    two = RedisCache(redis_url, namespace=unique_name)
    assert isinstance(one, Cache)
    try:
        await one.put("k", {"a": 1}, ttl=0.2)
        assert await two.get("k") == {"a": 1}
        await asyncio.sleep(0.35)
        assert not await two.exists("k")
        await one.put_many({"x": 1, "y": [2]})
        assert await two.get_many(["x", "y", "z"]) == {"x": 1, "y": [2]}
        await two.clear()
        assert await one.count() == 0
    finally:
        await one.aclose()
        await two.aclose()
        await _drop(redis_url, unique_name)


async def test_tenant_prefixes_do_not_collide(redis_url: str, unique_name: str) -> None:
    cache = RedisCache(redis_url, namespace=unique_name, tenant_scoped=True)
    try:
        with tenant_scope("a"):
            await cache.put("b:k", 1)
        with tenant_scope("a:b"):
            assert await cache.get("k") is None
            await cache.clear()
        with tenant_scope("a"):
            assert await cache.get("b:k") == 1
    finally:
        await cache.aclose()
        await _drop(redis_url, unique_name)


class TestRedisCacheContract(CacheContract):
    """Redis expires items itself: clauses that move the kit's clock are skipped (the factory
    takes no clock=); native expiry is checked in real time above."""

    @pytest.fixture
    def make_adapter(self, redis_url: str, unique_name: str) -> Iterator[Any]:
        def make(tenant_scoped: bool = False) -> RedisCache:
            return RedisCache(
                redis_url,
                namespace=f"{unique_name}.{uuid.uuid4().hex[:8]}",
                tenant_scoped=tenant_scoped,
            )

        yield make
        asyncio.run(_drop(redis_url, unique_name))
