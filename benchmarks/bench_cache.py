"""MemoryCache against a bare cachetools TTLCache behind a lock, and RedisCache.get_many of 100
keys against 100 sequential redis-py GETs, each pair measured in the same run.

Memory: measured for the default policy (``lru``) and for ``ttl`` (time-aware LRU: per-item
expiry, expired items dropped before live ones are evicted, where TTLCache has one global
TTL). Both sides run inside one coroutine on one event loop; ours is ``await cache.get(k)``
/ ``await cache.put(k, v)`` (key checks, expiry, counters, value copying by the codec), the
peer is ``with lock: ttlcache[k]`` (no validation, no copy). Values are short strings.
Redis: needs a server at ``$PORTFOLIO_CORE_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``); its lines are skipped with a message when none answers. Keys
use a unique namespace and are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
import uuid

import cachetools

from portfolio_core.adapters.memory.cache import MemoryCache

#: the CI smoke mode: tiny counts that prove the benchmark still runs (figures mean nothing)
SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
OPS = 200 if SMOKE else 20_000
REPEATS = 2 if SMOKE else 9
REDIS_REPEATS = 2 if SMOKE else 30


def emit(
    benchmark: str, ours: float, peer: float, unit: str, ratio: float, goal: str, met: bool
) -> None:
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "ours": round(ours, 4),
                "peer": round(peer, 4),
                "unit": unit,
                "ratio": round(ratio, 3),
                "goal": goal,
                "met": met,
            }
        )
    )


async def memory(policy: str) -> None:
    keys = [f"key-{i}" for i in range(1000)]
    ours = MemoryCache(10_000, policy=policy)  # type: ignore[arg-type]
    bare: cachetools.TTLCache[str, str] = cachetools.TTLCache(maxsize=10_000, ttl=3600)
    lock = threading.Lock()

    async def ours_put() -> float:
        t0 = time.perf_counter_ns()
        for i in range(OPS):
            await ours.put(keys[i % 1000], "value-string")
        return (time.perf_counter_ns() - t0) / OPS

    async def ours_get() -> float:
        t0 = time.perf_counter_ns()
        for i in range(OPS):
            await ours.get(keys[i % 1000])
        return (time.perf_counter_ns() - t0) / OPS

    async def bare_put() -> float:
        t0 = time.perf_counter_ns()
        for i in range(OPS):
            with lock:
                bare[keys[i % 1000]] = "value-string"
        return (time.perf_counter_ns() - t0) / OPS

    async def bare_get() -> float:
        t0 = time.perf_counter_ns()
        for i in range(OPS):
            with lock:
                bare.get(keys[i % 1000])
        return (time.perf_counter_ns() - t0) / OPS

    samples: dict[str, list[float]] = {
        "ours put": [],
        "bare put": [],
        "ours get": [],
        "bare get": [],
    }
    for _ in range(REPEATS):  # interleaved so machine noise hits both alike
        samples["ours put"].append(await ours_put())
        samples["bare put"].append(await bare_put())
        samples["ours get"].append(await ours_get())
        samples["bare get"].append(await bare_get())
    print(f"MemoryCache(policy={policy!r}) against TTLCache + lock")
    print(f"{'memory op':<12}{'median ns/op':>14}{'min ns/op':>12}")
    for label, values in samples.items():
        print(f"{label:<12}{statistics.median(values):>14.0f}{min(values):>12.0f}")
    for op in ("get", "put"):
        o = statistics.median(samples[f"ours {op}"])
        p = statistics.median(samples[f"bare {op}"])
        ratio = p / o
        emit(
            f"MemoryCache(policy={policy!r}).{op} vs cachetools TTLCache behind a lock",
            o,
            p,
            "ns/op",
            ratio,
            "ratio >= 0.667 (ours costs at most 1.5x the bare cost per operation)",
            ratio >= 1 / 1.5,
        )


async def redis_bench() -> None:
    try:
        import redis.asyncio as aioredis

        from portfolio_core.adapters.redis.cache import RedisCache
    except ImportError:
        print("redis benchmark skipped: install portfolio-core[redis]")
        return
    url = os.environ.get("PORTFOLIO_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = aioredis.Redis.from_url(url)
    try:
        await client.ping()
    except Exception as exc:
        print(f"redis benchmark skipped: no server at the configured URL ({type(exc).__name__})")
        await client.aclose()
        return
    namespace = f"bench{uuid.uuid4().hex[:10]}"
    cache = RedisCache(url, namespace=namespace)
    keys = [f"k{i}" for i in range(100)]
    await cache.put_many({k: {"i": i, "text": "x" * 40} for i, k in enumerate(keys)})
    names = [f"{namespace}:u:{k}" for k in keys]
    ours_ms: list[float] = []
    peer_ms: list[float] = []
    try:
        for _ in range(REDIS_REPEATS):
            t0 = time.perf_counter()
            got = await cache.get_many(keys)
            ours_ms.append((time.perf_counter() - t0) * 1000)
            assert len(got) == 100
            t0 = time.perf_counter()
            raw = [await client.get(name) for name in names]
            peer_ms.append((time.perf_counter() - t0) * 1000)
            assert all(v is not None for v in raw)
    finally:
        await cache.clear()
        await cache.aclose()
        await client.aclose()
    o, p = statistics.median(ours_ms), statistics.median(peer_ms)
    print(f"redis get_many(100): ours {o:.3f} ms, 100 sequential GETs {p:.3f} ms (medians)")
    emit(
        "RedisCache.get_many(100 keys) vs 100 sequential redis-py GETs",
        o,
        p,
        "ms",
        p / o,
        "ratio >= 5 (at least 5x faster)",
        p / o >= 5,
    )


async def main() -> None:
    await memory("lru")  # the default: LRU eviction, per-item expiry checked on read
    await memory("ttl")  # time-aware LRU: expired items dropped before evicting
    await redis_bench()


if __name__ == "__main__":
    asyncio.run(main())
