"""FileCache: survives a restart, atomic writes, expiry on read and by sweep, isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.file.cache import FileCache, FileCacheConfig
from portfolio_core.ports import Cache, CorruptDataError, InvalidInputError, tenant_scope
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


async def test_no_temporary_files_left_and_damaged_files_are_refused_not_dropped(
    tmp_path: Path,
) -> None:
    cache = FileCache(tmp_path)
    await cache.put_many({"a": 1, "b": 2})
    files = [p for p in tmp_path.rglob("*") if p.is_file()]  # noqa: ASYNC240
    assert all(p.suffix == ".entry" for p in files)
    for p in files:
        p.write_bytes(b"garbage")
    with pytest.raises(CorruptDataError) as caught:
        await cache.get_many(["a", "b"])
    assert caught.value.location in {str(p) for p in files}
    assert await cache.sweep() == 0
    assert all(p.read_bytes() == b"garbage" for p in files), "a damaged entry was changed"


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


@pytest.mark.parametrize("namespace", [".", "..", "...", "a\n"])
def test_empty_looking_namespaces_are_refused(tmp_path: Path, namespace: str) -> None:
    with pytest.raises(InvalidInputError):
        FileCache(tmp_path / "root", namespace=namespace)


async def test_namespaces_differing_only_in_case_or_dots_use_different_folders(
    tmp_path: Path,
) -> None:
    names = ["ns", "NS", "Ns", "n.s", "n-s", "n_s", "N.S"]
    caches = [FileCache(tmp_path, namespace=n) for n in names]
    for i, cache in enumerate(caches):
        await cache.put("k", i)
    folders = {p.name.lower() for p in tmp_path.iterdir()}  # noqa: ASYNC240
    assert len(folders) == len(names), "two namespaces share a folder on a case-blind disk"
    assert [await c.get("k") for c in caches] == list(range(len(names)))
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())  # noqa: ASYNC240


async def test_foreign_files_and_folders_are_ignored(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    await cache.put("k", 1)
    base = tmp_path / "default"
    (base / "README").write_text("not ours")
    (base / "_" / "notes.entry").write_text("not ours either")
    (base / "_" / "subdir").mkdir()
    (base / "_" / ".DS_Store").write_bytes(b"\x00\x01")
    assert await cache.keys() == ["k"]
    assert await cache.count() == 1
    assert await cache.sweep() == 0
    assert (base / "README").exists()
    assert (base / "_" / "notes.entry").exists()


async def test_sweep_removes_only_stale_temporary_files(tmp_path: Path) -> None:
    import os

    cache = FileCache(tmp_path, stale_write_after=60)
    await cache.put("k", 1)
    folder = tmp_path / "default" / "_"
    stale = folder / ".tmp-crashed.part"
    fresh = folder / ".tmp-writing.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = os.stat(stale).st_mtime - 120
    os.utime(stale, (old, old))
    assert await cache.sweep() == 1
    assert not stale.exists()
    assert fresh.exists()
    assert await cache.get("k") == 1


@pytest.mark.parametrize("bad", ["\udc80", "a\ud800b"])
async def test_lone_surrogates_are_invalid_input_not_unicode_errors(
    tmp_path: Path, bad: str
) -> None:
    cache = FileCache(tmp_path)
    with pytest.raises(InvalidInputError):
        await cache.put(bad, 1)
    with pytest.raises(InvalidInputError):
        await cache.get(bad)
    with pytest.raises(InvalidInputError):
        await cache.put("k", {"v": bad})
    with pytest.raises(InvalidInputError):
        await cache.put("k", {bad: 1})
    assert await cache.keys() == []


async def test_entries_written_before_checksums_are_still_read(tmp_path: Path) -> None:
    import hashlib

    folder = tmp_path / "default" / "_"
    folder.mkdir(parents=True)
    name = hashlib.sha256(b"old").hexdigest() + ".entry"
    (folder / name).write_bytes(b'{"k": "old", "e": null}\n{"v":1}')
    assert await FileCache(tmp_path).get("old") == {"v": 1}
