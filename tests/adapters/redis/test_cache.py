"""RedisCache against a real server: sharing, native TTL, one round trip for bulk calls."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from portfolio_core.adapters.redis.cache import RedisCache, RedisCacheConfig
from portfolio_core.ports import Cache, tenant_scope
from tests.adapters.cache_isolation import isolation_test


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


def test_tenant_isolation(redis_url: str, unique_name: str) -> None:
    async def make() -> RedisCache:
        return RedisCache(
            redis_url, namespace=f"{unique_name}{uuid.uuid4().hex[:8]}", tenant_scoped=True
        )

    async def cleanup(cache: Any) -> None:
        await _drop(redis_url, cache.namespace + ":")
        await cache.aclose()

    isolation_test(make, cleanup, max_examples=20)()
