"""Helpers shared by the ConfigStore adapter tests: two handles on one store see each other
and never time a version before the latest, and the tables and keys tests create are
dropped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
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


async def times_never_decrease_across_handles(
    make: Callable[[Callable[[], float]], ConfigStore],
) -> None:
    """A handle whose wall clock is a minute behind another's commits after it: its version
    is timed like the other's latest, not a minute earlier (the hold is the backend's, not
    one process's)."""
    now = time.time()
    ahead, behind = make(lambda: now), make(lambda: now - 60)
    try:
        await ahead.apply({"k": 1})
        await behind.apply({"k": 2})
        first, second = await behind.history()
        assert first.at.timestamp() == pytest.approx(now, abs=1e-3)
        assert second.at == first.at, (
            f"a version committed after one at {first.at} is timed {second.at}"
        )
    finally:
        await ahead.aclose()
        await behind.aclose()


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
