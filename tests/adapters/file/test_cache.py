"""FileCache: survives a restart, atomic writes, expiry on read and by sweep, isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.file.cache import FileCache, FileCacheConfig
from portfolio_core.ports import Cache, InvalidInputError, tenant_scope
from portfolio_core.testing.contracts.cache import CacheContract


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_survives_a_new_instance(tmp_path: Path) -> None:
    first = FileCache(tmp_path)
    assert isinstance(first, Cache)
    await first.put("k", {"a": [1, "x"]})
    second = FileCache.from_config(FileCacheConfig(directory=str(tmp_path)))
    assert await second.get("k") == {"a": [1, "x"]}


async def test_expiry_on_read_and_sweep(tmp_path: Path) -> None:
    clock = Clock()
    cache = FileCache(tmp_path, clock=clock)
    await cache.put("short", 1, ttl=5)
    await cache.put("long", 2)
    clock.now += 6
    assert await cache.get("short") is None
    assert not await cache.delete("short")
    await cache.put("short2", 1, ttl=5)
    clock.now += 6
    assert await cache.sweep() == 1
    assert await cache.keys() == ["long"]


async def test_no_temporary_files_left_and_torn_files_are_misses(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    await cache.put_many({"a": 1, "b": 2})
    files = [p for p in tmp_path.rglob("*") if p.is_file()]  # noqa: ASYNC240
    assert all(p.suffix == ".entry" for p in files)
    for p in files:
        p.write_bytes(b"garbage")
    assert await cache.get_many(["a", "b"]) == {}


async def test_namespaces_are_separate(tmp_path: Path) -> None:
    one = FileCache(tmp_path, namespace="one")
    two = FileCache(tmp_path, namespace="two")
    await one.put("k", 1)
    await two.clear()
    assert await one.get("k") == 1
    with pytest.raises(InvalidInputError):
        FileCache(tmp_path, namespace="../escape")


async def test_bad_input_stores_nothing(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, tenant_scoped=True)
    with tenant_scope("t"):
        with pytest.raises(InvalidInputError):
            await cache.put_many({"ok": 1, "bad": {1, 2}})
        assert await cache.count() == 0


class TestFileCacheContract(CacheContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Any:
        count = 0

        def make(clock: Any, tenant_scoped: bool = False) -> FileCache:
            nonlocal count
            count += 1
            return FileCache(tmp_path / f"c{count}", clock=clock, tenant_scoped=tenant_scoped)

        return make


def test_concurrent_writers_never_leave_a_torn_item(tmp_path: Path) -> None:
    import asyncio
    import threading

    big = {"blob": "x" * 200_000}
    torn: list[Any] = []

    def writer(n: int) -> None:
        async def body() -> None:
            cache = FileCache(tmp_path)
            for i in range(15):
                await cache.put("k", {**big, "n": n, "i": i})

        asyncio.run(body())

    def reader() -> None:
        async def body() -> None:
            cache = FileCache(tmp_path)
            for _ in range(40):
                got = await cache.get("k")
                if got is not None and got.get("blob") != big["blob"]:
                    torn.append(got)

        asyncio.run(body())

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not torn
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".entry"]
    assert leftovers == []


async def test_ping_creates_and_checks_the_folder(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "new", namespace="ns")
    await cache.ping()
    assert (tmp_path / "new" / "ns").is_dir()
