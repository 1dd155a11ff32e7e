"""Helpers shared by the ConfigStore adapter tests: two handles on one store see each other,
and the tables and keys tests create are dropped."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from portfolio_core.ports import ConfigStore


async def two_handles_see_each_other(a: ConfigStore, b: ConfigStore) -> None:
    """What ``a`` applies, ``b`` reads and watches, and the other way round."""
    watcher = b.watch("app.", from_version=0)
    try:
        assert await a.apply({"app.x": 1}, author="a") == 1
        assert await b.get("app.x") == 1, "b did not read a's write"
        change = await asyncio.wait_for(anext(watcher), 10)
        assert (change.version, change.updates(), change.author) == (1, {"app.x": 1}, "a")
        assert await b.apply({"app.x": 2}, expected_version=1) == 2
        assert await a.get("app.x") == 2
        assert await a.current_version() == 2
        change = await asyncio.wait_for(anext(watcher), 10)
        assert change.version == 2
    finally:
        await watcher.aclose()  # type: ignore[attr-defined]


def drop_tables(url: str, names: list[str]) -> None:
    async def drop() -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for name in names:
                await conn.execute(f"DROP TABLE IF EXISTS {name}")

    asyncio.run(drop())


async def drop_keys(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        async for name in client.scan_iter(match=prefix + "*", count=500):
            await client.delete(name)
    finally:
        await client.aclose()
