"""The Redis ConfigStore passes the ConfigStore contract suite, and two handles on one
namespace (two processes, in effect) see each other's changes."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis

from portfolio_core.adapters.redis.config_store import RedisConfigStore
from portfolio_core.ports import CorruptDataError
from portfolio_core.testing.contracts.config_store import ConfigStoreContract
from tests.adapters.config_store_support import (
    drop_keys,
    times_never_decrease_across_handles,
    two_handles_see_each_other,
)


class TestRedisConfigStore(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(
        self, redis_url: str, unique_name: str
    ) -> Iterator[Callable[..., RedisConfigStore]]:
        counter = itertools.count()

        def make(
            schemas: dict[str, object] | None = None, wall_clock: Callable[[], float] = time.time
        ) -> RedisConfigStore:
            return RedisConfigStore(
                redis_url,
                namespace=f"{unique_name}.{next(counter)}",
                schemas=schemas,
                wall_clock=wall_clock,
            )

        yield make
        asyncio.run(drop_keys(redis_url, unique_name))


def test_two_redis_handles_share_one_namespace(redis_url: str, unique_name: str) -> None:
    async def scenario() -> None:
        a = RedisConfigStore(redis_url, namespace=unique_name)
        b = RedisConfigStore(redis_url, namespace=unique_name)
        try:
            await two_handles_see_each_other(a, b)
        finally:
            await a.aclose()
            await b.aclose()
            await drop_keys(redis_url, unique_name)

    asyncio.run(scenario())


def test_redis_times_never_decrease_across_handles(redis_url: str, unique_name: str) -> None:
    async def scenario() -> None:
        try:
            await times_never_decrease_across_handles(
                lambda clock: RedisConfigStore(redis_url, namespace=unique_name, wall_clock=clock)
            )
        finally:
            await drop_keys(redis_url, unique_name)

    asyncio.run(scenario())


def test_a_damaged_entry_is_refused_not_skipped(redis_url: str, unique_name: str) -> None:
    async def scenario() -> None:
        store = RedisConfigStore(redis_url, namespace=unique_name)
        client = aioredis.Redis.from_url(redis_url)
        try:
            await store.apply({"a": 1})
            await client.xadd(f"{unique_name}:cfg:log", {"b": "garbage"}, id="2-1")
            await client.set(f"{unique_name}:cfg:v", 2)
            with pytest.raises(CorruptDataError) as info:
                await store.get("a")
            assert info.value.record == 2
        finally:
            await client.aclose()
            await store.aclose()
            await drop_keys(redis_url, unique_name)

    asyncio.run(scenario())
