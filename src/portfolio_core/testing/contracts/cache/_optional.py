"""Optional capabilities and the UnsupportedError of undeclared ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfolio_core.ports.cache import Cache, CacheCapability, CacheStats
from portfolio_core.ports.capabilities import supports
from portfolio_core.testing._factories import opened_with
from portfolio_core.testing.clauses import clause, expect_unsupported, requires, requires_absent
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.concurrency import run_concurrently
from portfolio_core.testing.contracts.cache._common import (
    resolve,
)
from portfolio_core.testing.suite import ContractSuite, Factory


class OptionalClauses(ContractSuite[Cache]):
    """Optional capabilities and the UnsupportedError of undeclared ones."""

    @clause("cache.enumerate", "keys() lists and count() counts exactly the live items")
    @requires(CacheCapability.ENUMERATE)
    async def test_enumerate(self, adapter: Any) -> None:
        assert await adapter.keys() == []
        assert await adapter.count() == 0
        await adapter.put_many({"a": 1, "b": 2, "c": 3})
        await adapter.delete("b")
        assert sorted(await adapter.keys()) == ["a", "c"]
        assert await adapter.count() == 2

    @clause(
        "cache.snapshot",
        "get_many and keys() return new collections: mutating them changes nothing stored",
    )
    async def test_returned_collections_are_copies(self, adapter: Any) -> None:
        await adapter.put_many({"a": [1], "b": 2})
        many = await adapter.get_many(["a", "b"])
        many["c"] = 3
        del many["b"]
        many["a"].append(9)
        assert await adapter.get_many(["a", "b", "c"]) == {"a": [1], "b": 2}, (
            "mutating the dict returned by get_many changed the cache"
        )
        if supports(adapter, CacheCapability.ENUMERATE):
            listed = await adapter.keys()
            listed.append("ghost")
            listed.remove("a")
            assert sorted(await adapter.keys()) == ["a", "b"], (
                "mutating the list returned by keys() changed what keys() returns"
            )
            assert await adapter.count() == 2

    @clause("cache.enumerate.expiry", "keys() and count() leave out expired items")
    @requires(CacheCapability.ENUMERATE, CacheCapability.TTL)
    async def test_enumerate_expiry(self, adapter: Any, clock: FakeClock) -> None:
        await adapter.put("short", 1, ttl=1)
        await adapter.put("long", 1)
        clock.advance(2)
        assert await adapter.keys() == ["long"]
        assert await adapter.count() == 1

    @clause("cache.enumerate.unsupported", "without the capability, keys() raises UnsupportedError")
    @requires_absent(CacheCapability.ENUMERATE)
    async def test_enumerate_unsupported(self, adapter: Any) -> None:
        if not hasattr(adapter, "keys"):
            return
        with expect_unsupported(CacheCapability.ENUMERATE):
            await adapter.keys()

    @clause("cache.fetch.single_flight", "concurrent fetches of a missing key populate it once")
    @requires(CacheCapability.FETCH)
    async def test_fetch_once(self, adapter: Any) -> None:
        calls = 0

        async def populate() -> dict[str, int]:
            nonlocal calls
            calls += 1
            for _ in range(5):
                await asyncio.sleep(0)
            return {"v": 1}

        results = await run_concurrently(10, lambda i: adapter.fetch("k", populate))
        assert results == [{"v": 1}] * 10, results
        assert calls == 1, f"populate ran {calls} times for one key"
        assert await adapter.get("k") == {"v": 1}
        assert await adapter.fetch("k", populate) == {"v": 1}
        assert calls == 1, "fetch of a present key called populate"

    @clause(
        "cache.fetch.cancellation",
        "a cancelled waiter cancels neither the others nor the population, and leaves no lock",
    )
    @requires(CacheCapability.FETCH)
    async def test_fetch_cancellation(self, adapter: Any) -> None:
        gate = asyncio.Event()
        calls = 0

        async def populate() -> int:
            nonlocal calls
            calls += 1
            await gate.wait()
            return 7

        first = asyncio.ensure_future(adapter.fetch("k", populate))
        second = asyncio.ensure_future(adapter.fetch("k", populate))
        for _ in range(5):
            await asyncio.sleep(0)
        first.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        assert await asyncio.wait_for(second, 10) == 7, "the other waiter did not get the value"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert calls == 1

        async def boom() -> int:
            raise RuntimeError("populate failed")

        with pytest.raises(RuntimeError):
            await asyncio.wait_for(adapter.fetch("e", boom), 10)

        async def ok() -> int:
            return 3

        assert await asyncio.wait_for(adapter.fetch("e", ok), 10) == 3, (
            "a failed population left the key stuck"
        )

    @clause("cache.fetch.unsupported", "without the capability, fetch raises UnsupportedError")
    @requires_absent(CacheCapability.FETCH)
    async def test_fetch_unsupported(self, adapter: Any) -> None:
        if not hasattr(adapter, "fetch"):
            return

        async def populate() -> int:
            return 1

        with expect_unsupported(CacheCapability.FETCH):
            await adapter.fetch("k", populate)

    @clause("cache.bounded", "a bounded cache never holds more than max_entries items")
    @requires(CacheCapability.BOUNDED)
    async def test_bounded(self, make_adapter: Factory, kit_clock: FakeClock) -> None:
        async with opened_with(make_adapter, kit_clock, max_entries=3) as adapter:
            keys = [f"k{i}" for i in range(10)]
            for i, key in enumerate(keys):
                await adapter.put(key, i)
            held = await adapter.get_many(keys)
            assert len(held) <= 3, f"holds {len(held)} items with max_entries=3"
            assert held, "a bounded cache evicted everything"
            assert all(held[k] == int(k[1:]) for k in held)

    @clause(
        "cache.bounded.under_bound",
        "a bounded cache below its bound behaves like an unbounded one: it evicts nothing",
    )
    @requires(CacheCapability.BOUNDED)
    async def test_bounded_under_bound(self, make_adapter: Factory, kit_clock: FakeClock) -> None:
        async with opened_with(make_adapter, kit_clock, max_entries=8) as adapter:
            keys = [f"k{i}" for i in range(8)]
            for i, key in enumerate(keys):
                await adapter.put(key, i)
            await adapter.put("k0", "again")  # an overwrite adds no item
            await adapter.delete("k7")
            await adapter.put("k8", 8)  # takes the deleted item's room
            held = await adapter.get_many([*keys, "k8"])
            expected = {k: i for i, k in enumerate(keys)} | {"k0": "again", "k8": 8}
            del expected["k7"]
            assert held == expected, (
                f"a cache with max_entries=8 holding 8 items lost some: {sorted(held)}"
            )
            stats = getattr(adapter, "stats", None)
            if callable(stats):
                counters = await resolve(stats())
                if isinstance(counters, CacheStats):
                    assert counters.evictions == 0, (
                        f"stats() counts {counters.evictions} evictions below the bound"
                    )

    @clause(
        "cache.stats",
        "an adapter offering stats() counts each get and each key of get_many as a hit or a "
        "miss, evictions only to respect the bound, and the items held",
    )
    @requires(CacheCapability.BOUNDED)
    async def test_stats(self, make_adapter: Factory, kit_clock: FakeClock) -> None:
        async with opened_with(make_adapter, kit_clock, max_entries=3) as adapter:
            stats = getattr(adapter, "stats", None)
            if not callable(stats) or not isinstance(await resolve(stats()), CacheStats):
                pytest.skip(f"{type(adapter).__name__} offers no stats() -> CacheStats")
            await adapter.put_many({"a": 1, "b": 2})
            await adapter.get("a")
            await adapter.get("missing")
            await adapter.get_many(["a", "b", "gone", "a"])
            await adapter.delete("b")
            got = await resolve(stats())
            assert (got.hits, got.misses, got.evictions, got.size) == (4, 2, 0, 1), (
                f"after 4 hits, 2 misses and a delete: {got}"
            )
            for key in ("c", "d", "e", "f"):
                await adapter.put(key, 0)
            got = await resolve(stats())
            assert (got.evictions, got.size) == (2, 3), (
                f"5 items put into room for 3 make 2 evictions: {got}"
            )
