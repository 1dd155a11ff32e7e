"""Consume-and-acknowledge throughput of the Redis stream adapter against plain redis-py.

Both sides read the same kind of stream (JSON payloads in field ``p``) in a consumer group,
``COUNT`` 100 per fetch, decode each payload and ``XACK`` each message on its own: ours
through ``RedisStream.stream(..., group=...)`` + ``ack``, the peer with a bare
``XREADGROUP``/``XACK`` loop. Runs alternate so machine noise hits both alike; medians.

Needs a Redis server: ``PORTFOLIO_CORE_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``). Every key it makes is deleted at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid

import redis.asyncio as aioredis

from portfolio_core.adapters.redis.stream import RedisStream
from portfolio_core.ports import StreamOptions

URL = os.environ.get("PORTFOLIO_CORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
#: the CI smoke mode: tiny counts that prove the benchmark still runs (figures mean nothing)
SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
MESSAGES = 200 if SMOKE else 3000
RUNS = 2 if SMOKE else 7
BATCH = 100
GOAL = 0.8


async def fill(client: aioredis.Redis, key: str) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(MESSAGES):
        pipe.xadd(key, {"p": json.dumps({"i": i, "body": "x" * 64})})
    await pipe.execute()


async def ours(adapter: RedisStream, source: str) -> float:
    opts = StreamOptions(group="bench", consumer="c", follow=False, buffer_size=BATCH)
    start = time.perf_counter()
    n = 0
    async for message in adapter.stream(source, opts):
        await adapter.ack(source, message, opts)
        n += 1
    elapsed = time.perf_counter() - start
    assert n == MESSAGES, n
    return n / elapsed


async def peer(client: aioredis.Redis, key: str) -> float:
    await client.xgroup_create(key, "bench", id="0", mkstream=True)
    start = time.perf_counter()
    n = 0
    while True:
        rows = await client.xreadgroup("bench", "c", {key: ">"}, count=BATCH)
        if not rows:
            break
        for _name, entries in rows:
            for entry_id, fields in entries:
                json.loads(fields[b"p"])
                await client.xack(key, "bench", entry_id)
                n += 1
    elapsed = time.perf_counter() - start
    assert n == MESSAGES, n
    return n / elapsed


async def main() -> None:
    namespace = f"bench:{uuid.uuid4().hex[:10]}"
    client = aioredis.Redis.from_url(URL)
    adapter = RedisStream(client=client, namespace=namespace)
    ours_rates: list[float] = []
    peer_rates: list[float] = []
    try:
        for run in range(RUNS):
            source = f"s{run}"
            await fill(client, adapter._key(source))
            ours_rates.append(await ours(adapter, source))
            peer_key = f"{namespace}:peer{run}"
            await fill(client, peer_key)
            peer_rates.append(await peer(client, peer_key))
    finally:
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    o, p = statistics.median(ours_rates), statistics.median(peer_rates)
    print(f"{'what':<40}{'median msg/s':>14}")
    print(f"{'RedisStream group consume + ack':<40}{o:>14.0f}")
    print(f"{'redis-py XREADGROUP + XACK loop':<40}{p:>14.0f}")
    ratio = o / p
    print(
        json.dumps(
            {
                "benchmark": "redis stream group consume+ack vs redis-py XREADGROUP/XACK",
                "ours": round(o),
                "peer": round(p),
                "unit": "messages/s",
                "ratio": round(ratio, 3),
                "goal": f"at least {GOAL}x the throughput of the bare redis-py loop",
                "met": ratio >= GOAL,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
