"""Time to live: with a controlled clock and in real time."""

from __future__ import annotations

import asyncio
import time

import pytest

from portfolio_core.ports.cache import Cache, CacheCapability
from portfolio_core.testing.clauses import clause, expect_unsupported, requires, requires_absent
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.contracts.cache._common import (
    REAL_TIME_WAIT,
)
from portfolio_core.testing.loop import accepts_keyword
from portfolio_core.testing.suite import ContractSuite, Factory


class TtlClauses(ContractSuite[Cache]):
    """Time to live: with a controlled clock and in real time."""

    @clause("cache.ttl.expires", "an item is returned until its TTL passes, never after")
    @requires(CacheCapability.TTL)
    async def test_ttl_expires(self, adapter: Cache, clock: FakeClock) -> None:
        await adapter.put("k", 1, ttl=5)
        await adapter.put_many({"m": 2}, ttl=5)
        clock.advance(4.5)
        assert await adapter.get("k") == 1, "expired before its TTL"
        assert await adapter.get_many(["k", "m"]) == {"k": 1, "m": 2}
        clock.advance(1)
        assert await adapter.get("k") is None, "returned after its TTL passed"
        assert await adapter.get_many(["k", "m"]) == {}, "get_many returned expired items"

    @clause(
        "cache.ttl.boundary",
        "an item is live strictly before put time + ttl and expired at exactly that instant; "
        "fractional ttls count to the fraction",
    )
    @requires(CacheCapability.TTL)
    async def test_ttl_boundary(self, adapter: Cache, clock: FakeClock) -> None:
        # times chosen exact in binary floating point, so "exactly the TTL" is exact
        await adapter.put("k", 1, ttl=5)
        await adapter.put("d", 1, ttl=5)
        await adapter.put("g", 1, ttl=5)
        clock.advance(4.5)
        assert await adapter.get_many(["k", "d", "g"]) == {"k": 1, "d": 1, "g": 1}
        clock.advance(0.5)
        assert await adapter.delete("d") is False, "delete found an item at exactly its TTL"
        assert await adapter.exists("k") is False, "exists was true at exactly the TTL"
        assert await adapter.get("g") is None, "an item was returned at exactly its TTL"
        await adapter.put("frac", 2, ttl=0.25)
        clock.advance(0.125)
        assert await adapter.get("frac") == 2, "an item with ttl=0.25 expired after 0.125 s"
        clock.advance(0.125)
        assert await adapter.get("frac") is None, (
            "an item with ttl=0.25 was still returned 0.25 s later (fractional ttl rounded up?)"
        )

    @clause(
        "cache.ttl.real_time",
        "without an injectable clock, a short ttl is honoured in real time (bounded wait)",
    )
    @requires(CacheCapability.TTL)
    async def test_ttl_real_time(self, adapter: Cache, make_adapter: Factory) -> None:
        if accepts_keyword(make_adapter, "clock"):
            pytest.skip("the factory takes clock=: expiry is checked with the kit's clock")
        await adapter.put("short", 1, ttl=0.3)
        await adapter.put_many({"short-many": 2}, ttl=0.3)
        await adapter.put("long", 3, ttl=600)
        deadline = time.monotonic() + REAL_TIME_WAIT
        for _ in range(int(REAL_TIME_WAIT / 0.05)):  # poll the adapter: it has no event to wait on
            if not await adapter.get_many(["short", "short-many"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert await adapter.get_many(["short", "short-many", "long"]) == {"long": 3}, (
            f"an item with ttl=0.3 was still returned {REAL_TIME_WAIT:g} s later"
        )
        assert await adapter.exists("short") is False
        assert await adapter.delete("short") is False, "delete reported an expired item present"

    @clause("cache.ttl.exists", "exists is false and delete returns False once the TTL has passed")
    @requires(CacheCapability.TTL)
    async def test_exists_after_expiry(self, adapter: Cache, clock: FakeClock) -> None:
        await adapter.put("k", 1, ttl=1)
        await adapter.put("d", 1, ttl=1)
        clock.advance(2)
        assert await adapter.exists("k") is False, "exists is true after expiry"
        assert await adapter.delete("d") is False, "delete reported an expired item as present"

    @clause("cache.ttl.overwrite", "a put without ttl replaces an earlier expiry")
    @requires(CacheCapability.TTL)
    async def test_ttl_overwrite(self, adapter: Cache, clock: FakeClock) -> None:
        await adapter.put("k", 1, ttl=1)
        await adapter.put("k", 2)
        clock.advance(10)
        assert await adapter.get("k") == 2

    @clause("cache.ttl.accepted", "put with a ttl keeps the item until then (no clock needed)")
    @requires(CacheCapability.TTL)
    async def test_ttl_accepted(self, adapter: Cache) -> None:
        await adapter.put("k", 1, ttl=60)
        await adapter.put_many({"m": 2}, ttl=60.5)
        assert await adapter.get_many(["k", "m"]) == {"k": 1, "m": 2}

    @clause("cache.ttl.unsupported", "without TTL support, put with a ttl raises UnsupportedError")
    @requires_absent(CacheCapability.TTL)
    async def test_ttl_unsupported(self, adapter: Cache) -> None:
        with expect_unsupported(CacheCapability.TTL):
            await adapter.put("k", 1, ttl=5)
