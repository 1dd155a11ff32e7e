"""The memory Cache under memory pressure: ``release`` drops expired entries, then evicts in
the policy's order, and estimates what it freed."""

from __future__ import annotations

import asyncio

import pytest

from portfolio_core.adapters.memory.cache import MemoryCache
from portfolio_core.ports import ReleaseOrder, Shrinkable
from portfolio_core.testing.shrinkable import check_shrinkable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_is_shrinkable_and_released_last() -> None:
    cache = MemoryCache()
    assert isinstance(cache, Shrinkable)
    assert cache.release_order == ReleaseOrder.CACHE_ENTRIES
    assert max(ReleaseOrder) == cache.release_order


async def test_resident_bytes_grow_with_the_values() -> None:
    cache = MemoryCache()
    assert cache.resident_bytes() == 0
    await cache.put("small", "x")
    small = cache.resident_bytes()
    await cache.put("big", "x" * 100_000)
    assert cache.resident_bytes() - small >= 100_000
    await cache.put("doc", {"rows": list(range(1000))})  # stored encoded
    assert cache.resident_bytes() - small >= 100_000 + 4000


@pytest.mark.parametrize("policy", ["lru", "ttl"])
async def test_release_evicts_least_recently_used_first(policy: str) -> None:
    cache = MemoryCache(policy=policy)  # type: ignore[arg-type]
    for key in "abcd":
        await cache.put(key, key * 10_000)
    assert await cache.get("a") is not None  # a is now the most recently used
    resident = cache.resident_bytes()
    freed = cache.release(15_000)  # more than one value: b and c go
    assert 20_000 <= freed < 25_000
    assert sorted(await cache.keys()) == ["a", "d"]
    assert cache.resident_bytes() == resident - freed
    assert cache.stats().evictions == 2


async def test_release_drops_expired_entries_before_live_ones() -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    await cache.put("old", "o" * 10_000, ttl=1)
    await cache.put("live", "l" * 10_000)
    clock.now = 5.0
    freed = cache.release(1)
    assert freed >= 10_000
    assert await cache.keys() == ["live"]


async def test_release_in_lfu_order_and_of_everything() -> None:
    cache = MemoryCache(policy="lfu")
    for key in "abc":
        await cache.put(key, key * 1000)
    for _ in range(3):
        await cache.get("a")
        await cache.get("c")
    cache.release(1)
    assert sorted(await cache.keys()) == ["a", "c"]
    assert cache.release(10**9) > 0
    assert await cache.keys() == []
    assert cache.release(10**9) == 0


async def test_counting_resident_bytes_does_not_count_as_use() -> None:
    cache = MemoryCache(policy="lru")
    for key in "abc":
        await cache.put(key, key * 1000)
    await cache.get("a")  # recency: b, c, a
    cache.resident_bytes()
    cache.release(1)
    assert sorted(await cache.keys()) == ["a", "c"], "b stayed the least recently used"


@pytest.mark.parametrize("policy", ["lru", "lfu"])
async def test_listing_keys_is_not_a_use(policy: str) -> None:
    cache = MemoryCache(3, policy=policy)  # type: ignore[arg-type]
    for key in "abc":
        await cache.put(key, key)
    await cache.get("a")
    await cache.get("c")
    for _ in range(5):
        await cache.keys()
    await cache.put("d", "d")  # full: the least used of a, b, c goes
    assert sorted(await cache.keys()) == ["a", "c", "d"]


def test_keeps_the_shrinkable_contract() -> None:
    cache = MemoryCache()
    counter = iter(range(10**6))

    def fill() -> None:
        async def put_some() -> None:
            for _ in range(200):
                await cache.put(f"k{next(counter)}", "v" * 1000)

        asyncio.run(put_some())

    check_shrinkable(cache, fill)
