"""MemoryCache beyond the shared contract: policies, counters, threads, single-flight fetch."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import cachetools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_core.adapters.memory.cache import (
    MemoryCache,
    MemoryCacheConfig,
    _counting,
    _Entry,
    _TimeAwareLRU,
)
from portfolio_core.ports import (
    Cache,
    FetchingCache,
    InvalidInputError,
    TenantContext,
    TenantRequiredError,
    tenant_scope,
)
from portfolio_core.testing.contracts.cache import CacheContract


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_satisfies_the_port() -> None:
    cache = MemoryCache()
    assert isinstance(cache, Cache)
    assert isinstance(cache, FetchingCache)


@pytest.mark.parametrize("policy", ["lru", "lfu", "ttl"])
async def test_every_policy_honours_per_item_ttl(policy: Any) -> None:
    clock = Clock()
    cache = MemoryCache(10, policy=policy, clock=clock)
    await cache.put("short", 1, ttl=5)
    await cache.put("long", 2, ttl=50)
    await cache.put("forever", 3)
    clock.now += 10
    assert await cache.get("short") is None
    assert not await cache.exists("short")
    assert await cache.get_many(["short", "long", "forever"]) == {"long": 2, "forever": 3}
    assert sorted(await cache.keys()) == ["forever", "long"]


async def test_lru_evicts_least_recently_used_and_counts_it() -> None:
    cache = MemoryCache(2, policy="lru")
    await cache.put("a", 1)
    await cache.put("b", 2)
    await cache.get("a")
    await cache.put("c", 3)
    assert await cache.get("b") is None
    assert await cache.get("a") == 1
    stats = cache.stats()
    assert stats.evictions == 1
    assert stats.size == 2
    assert (stats.hits, stats.misses) == (2, 1)


async def test_lfu_evicts_least_frequently_used() -> None:
    cache = MemoryCache(2, policy="lfu")
    await cache.put("a", 1)
    await cache.put("b", 2)
    for _ in range(3):
        await cache.get("a")
    await cache.put("c", 3)
    assert await cache.exists("a")
    assert not await cache.exists("b")


async def test_ttl_policy_drops_expired_before_evicting_live() -> None:
    clock = Clock()
    cache = MemoryCache(2, policy="ttl", clock=clock)
    await cache.put("live", 1)
    await cache.put("dying", 2, ttl=1)
    clock.now += 2
    await cache.put("new", 3)
    assert await cache.get("live") == 1
    assert cache.stats().evictions == 0


async def test_ttl_policy_drops_every_expired_item_before_evicting_a_live_one() -> None:
    clock = Clock()
    cache = MemoryCache(4, policy="ttl", clock=clock)
    await cache.put("old", 1)  # live, and the least recently used
    await cache.put("a", 2, ttl=1)
    await cache.put("b", 3, ttl=2)
    await cache.put("c", 4, ttl=10)
    clock.now += 5  # a and b have expired, c has not
    await cache.put("n1", 5)  # a full cache: both expired items go, no live one
    await cache.put("n2", 6)
    assert await cache.get_many(["old", "c", "n1", "n2"]) == {"old": 1, "c": 4, "n1": 5, "n2": 6}
    assert cache.stats().evictions == 0
    await cache.put("n3", 7)  # full of live items: the least recently used goes
    assert await cache.get("old") is None
    assert cache.stats().evictions == 1


async def test_ttl_policy_evicts_the_least_recently_read_or_written() -> None:
    cache = MemoryCache(3, policy="ttl")
    await cache.put("a", 1, ttl=60)
    await cache.put("b", 2)
    await cache.put("c", 3, ttl=60)
    await cache.get_many(["a"])
    await cache.get("b")
    await cache.put("d", 4)  # evicts c
    await cache.put("a", 10)  # an overwrite is a use too
    await cache.put("e", 5)  # evicts b
    assert await cache.get_many(["a", "b", "c", "d", "e"]) == {"a": 10, "d": 4, "e": 5}
    stats = cache.stats()
    assert (stats.evictions, stats.size) == (2, 3)


async def test_ttl_policy_the_latest_expiry_of_a_key_wins() -> None:
    clock = Clock()
    cache = MemoryCache(4, policy="ttl", clock=clock)
    await cache.put("renewed", 1, ttl=1)
    await cache.put("renewed", 2, ttl=100)
    await cache.put("unbounded", 1, ttl=1)
    await cache.put("unbounded", 2)
    await cache.put("shortened", 3, ttl=100)
    await cache.put("shortened", 4, ttl=1)
    await cache.put("filler", 5)
    clock.now += 2
    await cache.put("new", 6)  # full: only the item expired by now goes
    assert await cache.get_many(["renewed", "unbounded", "shortened", "filler", "new"]) == {
        "renewed": 2,
        "unbounded": 2,
        "filler": 5,
        "new": 6,
    }
    assert cache.stats().evictions == 0


async def test_ttl_policy_size_counts_live_items_only() -> None:
    clock = Clock()
    cache = MemoryCache(10, policy="ttl", clock=clock)
    await cache.put("a", 1, ttl=1)
    await cache.put("b", 2, ttl=5)
    await cache.put("c", 3)
    await cache.put("a", 4, ttl=1)  # an overwrite is not a new item
    assert cache.stats().size == 3
    clock.now += 2
    assert cache.stats().size == 2
    await cache.delete("c")
    assert cache.stats().size == 1
    clock.now += 10
    assert cache.stats().size == 0
    await cache.put("d", 5, ttl=1)
    assert cache.stats().size == 1
    assert cache.stats().evictions == 0


async def test_ttl_policy_overwrites_do_not_pile_up_expiry_records() -> None:
    clock = Clock()
    cache = MemoryCache(10, policy="ttl", clock=clock)
    await cache.put("early", 0, ttl=10)  # written once: its expiry must survive the churn
    await cache.put("late", 0, ttl=1000)
    for i in range(5_000):
        await cache.put(f"k{i % 5}", i, ttl=60 + i % 7)
    assert len(cache._data._deadlines) <= 2 * 7 + 8, "one expiry record kept per put"
    assert cache.stats().size == 7
    clock.now += 20
    assert cache.stats().size == 6
    clock.now += 100
    assert cache.stats().size == 1
    assert await cache.get("late") == 0


_keys = st.sampled_from("abcd")
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _keys, st.none() | st.floats(0.5, 10), st.integers(0, 9)),
        st.tuples(st.just("get"), _keys),
        st.tuples(st.just("delete"), _keys),
        st.tuples(st.just("tick"), st.floats(0, 6)),
        st.tuples(st.just("len")),
    ),
    max_size=80,
)


@settings(max_examples=400, deadline=None)
@given(ops=_ops, maxsize=st.integers(1, 3))
def test_ttl_policy_mapping_behaves_like_cachetools_tlru(ops: list[Any], maxsize: int) -> None:
    """The same live items, evictions and sizes as cachetools' TLRUCache after every step."""
    clock = Clock()
    ours = _TimeAwareLRU(maxsize, clock)
    oracle = _counting(cachetools.TLRUCache)(
        maxsize=maxsize, ttu=lambda _k, entry, _now: entry.expires, timer=clock
    )

    def live(entry: _Entry | None) -> Any:
        return entry.payload if entry is not None and entry.expires > clock.now else None

    for op in ops:
        if op[0] == "put":
            _, key, ttl, value = op
            entry = _Entry(clock.now + ttl if ttl is not None else float("inf"), value, True)
            ours[(None, key)] = entry
            oracle[(None, key)] = entry
        elif op[0] == "get":
            assert live(ours.get((None, op[1]))) == live(oracle.get((None, op[1]))), op
        elif op[0] == "delete":
            assert live(ours.pop((None, op[1]))) == live(oracle.pop((None, op[1]), None)), op
        elif op[0] == "tick":
            clock.now += op[1]
        else:
            assert len(ours) == len(oracle), op
        # looked at without counting as a use: the items live now, and what they hold
        held = {k: e.payload for k, e in ours.items() if e.expires > clock.now}
        assert held == {k: cachetools.Cache.__getitem__(oracle, k).payload for k in oracle}, op
        assert ours.evictions == oracle.evictions, op


async def test_values_are_copies() -> None:
    cache = MemoryCache()
    value = {"a": [1, 2]}
    await cache.put("k", value)
    value["a"].append(3)
    got = await cache.get("k")
    assert got == {"a": [1, 2]}
    got["a"].append(4)
    assert await cache.get("k") == {"a": [1, 2]}


@pytest.mark.parametrize("bad", [None, (1, 2), {1: "x"}, float("nan"), b"x", {"a": object()}])
async def test_bad_values_store_nothing(bad: Any) -> None:
    cache = MemoryCache()
    with pytest.raises(InvalidInputError):
        await cache.put_many({"ok": 1, "bad": bad})
    assert await cache.count() == 0


async def test_default_ttl_and_tenant_override() -> None:
    clock = Clock()
    cache = MemoryCache(default_ttl=10, tenant_scoped=True, clock=clock)
    with tenant_scope("plain"):
        await cache.put("k", 1)
    with tenant_scope(TenantContext("short", {"cache.default_ttl": 1})):
        await cache.put("k", 1)
    clock.now += 2
    with tenant_scope("plain"):
        assert await cache.get("k") == 1
    with tenant_scope("short"):
        assert await cache.get("k") is None


async def test_tenant_scoped_fails_closed() -> None:
    cache = MemoryCache(tenant_scoped=True)
    for call in (cache.get("k"), cache.put("k", 1), cache.clear(), cache.keys()):
        with pytest.raises(TenantRequiredError):
            await call


async def test_fetch_runs_populate_once_under_concurrency() -> None:
    cache = MemoryCache()
    calls = 0

    async def populate() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return "v"

    results = await asyncio.gather(*(cache.fetch("k", populate) for _ in range(20)))
    assert results == ["v"] * 20
    assert calls == 1
    assert await cache.get("k") == "v"


async def test_fetch_gives_every_concurrent_waiter_its_own_copy() -> None:
    cache = MemoryCache()

    async def populate() -> dict[str, list[int]]:
        await asyncio.sleep(0.01)
        return {"items": [1, 2]}

    first, second, third = await asyncio.gather(*(cache.fetch("k", populate) for _ in range(3)))
    first["items"].append(3)
    first["extra"] = []
    assert second == {"items": [1, 2]}
    assert third == {"items": [1, 2]}
    assert second is not third
    assert await cache.get("k") == {"items": [1, 2]}


async def test_fetch_result_on_a_hit_is_a_copy_too() -> None:
    cache = MemoryCache()

    async def populate() -> list[int]:
        return [1]

    mine = await cache.fetch("k", populate)
    mine.append(2)
    assert await cache.fetch("k", populate) == [1]


async def test_fetch_cancelled_waiter_does_not_cancel_others() -> None:
    cache = MemoryCache()
    release = asyncio.Event()
    calls = 0

    async def populate() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 7

    first = asyncio.create_task(cache.fetch("k", populate))
    second = asyncio.create_task(cache.fetch("k", populate))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.wait_for(second, 2) == 7
    with pytest.raises(asyncio.CancelledError):
        await first
    assert calls == 1
    assert await cache.get("k") == 7


async def test_fetch_error_reaches_every_waiter_and_releases_the_key() -> None:
    cache = MemoryCache()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("no")

    results = await asyncio.gather(
        *(cache.fetch("k", boom) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)

    async def ok() -> int:
        return 1

    assert await asyncio.wait_for(cache.fetch("k", ok), 2) == 1


async def test_fetch_when_every_waiter_is_cancelled_the_key_is_not_stuck() -> None:
    cache = MemoryCache()

    async def slow() -> int:
        await asyncio.sleep(0.05)
        return 1

    tasks = [asyncio.create_task(cache.fetch("k", slow)) for _ in range(3)]
    await asyncio.sleep(0.01)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert await asyncio.wait_for(cache.fetch("k", slow), 2) == 1


def test_fetch_single_flight_across_threads_and_loops() -> None:
    cache = MemoryCache()
    calls = 0
    lock = threading.Lock()
    started = threading.Barrier(4)

    async def populate() -> int:
        nonlocal calls
        with lock:
            calls += 1
        await asyncio.sleep(0.1)
        return 5

    results: list[int] = []

    def worker() -> None:
        started.wait(5)
        results.append(asyncio.run(cache.fetch("k", populate)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [5] * 4
    assert calls == 1


@pytest.mark.parametrize("policy", ["lru", "lfu", "ttl"])
def test_safe_under_threads(policy: Any) -> None:
    cache = MemoryCache(50, policy=policy)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        async def body() -> None:
            for i in range(300):
                await cache.put(f"k{(i * n) % 80}", i, ttl=None if i % 3 else 0.001)
                await cache.get(f"k{i % 80}")
                if i % 50 == 0:
                    await cache.delete(f"k{i % 80}")

        try:
            asyncio.run(body())
        except BaseException as exc:  # reported below: a thread's error would go unseen
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert cache.stats().size <= 50


def test_from_config_and_repr() -> None:
    cache = MemoryCache.from_config(MemoryCacheConfig(max_entries=5, policy="ttl"))
    assert cache.max_entries == 5
    assert "MemoryCache" in repr(cache)
    with pytest.raises(InvalidInputError):
        MemoryCache(0)


class TestMemoryCacheContract(CacheContract):
    @pytest.fixture
    def make_adapter(self) -> type[MemoryCache]:
        return MemoryCache


class TestMemoryCacheTtlPolicyContract(CacheContract):
    @pytest.fixture
    def make_adapter(self) -> Any:
        def make(clock: Any, tenant_scoped: bool = False, max_entries: int = 1000) -> MemoryCache:
            return MemoryCache(max_entries, policy="ttl", clock=clock, tenant_scoped=tenant_scoped)

        return make


class ReversingCodec:
    """A codec that is not the default: values must go through it (and come back equal)."""

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, value: Any) -> bytes:
        import json

        self.encoded += 1
        return json.dumps(value).encode()[::-1]

    def decode(self, data: bytes) -> Any:
        import json

        return json.loads(data[::-1])


async def test_a_custom_codec_is_used_for_every_value() -> None:
    codec = ReversingCodec()
    cache = MemoryCache(codec=codec)
    await cache.put("s", "text")
    await cache.put("d", {"a": [1]})
    assert await cache.get_many(["s", "d"]) == {"s": "text", "d": {"a": [1]}}
    assert codec.encoded == 2
