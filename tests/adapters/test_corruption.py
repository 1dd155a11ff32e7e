"""One flipped byte at a seeded random offset of every on-disk format: nothing acknowledged
is ever silently dropped or silently changed where the format can tell.

* file event log, file cache entries, safetensors KV files: checksummed, so reading either
  returns exactly what was written or raises a clear port error, and the damaged file is
  never changed; for the event log, ``recover`` then salvages every other record;
* JSON Lines streams (plain text, no checksum): every line is still read or reading stops
  with InvalidInputError naming the line; the file is never changed;
* file config log: checksummed like the event log; ``salvage_config_log`` keeps every other
  version;
* SQLite databases (event store, cache, config store, job queue): a clear port error or
  every acknowledged row.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.file.cache import FileCache
from portfolio_core.adapters.file.config_store import FileConfigStore
from portfolio_core.adapters.file.event_store import FileEventStore
from portfolio_core.adapters.file.recovery import salvage_config_log, salvage_event_log
from portfolio_core.adapters.file.stream import JsonlStream
from portfolio_core.adapters.sql.cache import SqliteCache
from portfolio_core.adapters.sql.config_store import SQLiteConfigStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.adapters.sql.sqlite_job_queue import SQLiteJobQueue
from portfolio_core.ports import (
    CorruptDataError,
    InvalidInputError,
    JobState,
    NewEvent,
    NewJob,
    PortError,
    StreamOptions,
    UnavailableError,
)

FLIPS = 25  # offsets per format and seed
SEEDS = [1, 2]


def flip(path: Path, rng: random.Random) -> tuple[int, bytes]:
    data = bytearray(path.read_bytes())
    offset = rng.randrange(len(data))
    data[offset] ^= rng.randrange(1, 256)
    path.write_bytes(bytes(data))
    return offset, bytes(data)


# -- file event log -------------------------------------------------------------------------


async def _fill_log(path: Path) -> list[tuple[str, dict[str, Any]]]:
    store = FileEventStore(path, fsync="never")
    written: list[tuple[str, dict[str, Any]]] = []
    for b in range(8):
        events = [NewEvent("E", {"b": b, "k": k, "pad": "x" * (b * 7)}) for k in range(3)]
        await store.append(f"s{b % 3}", events)
        written += [(e.id, dict(e.data)) for e in events]
    await store.aclose()
    return written


@pytest.mark.parametrize("seed", SEEDS)
def test_file_event_log(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    original = tmp_path / "original.log"
    written = asyncio.run(_fill_log(original))
    pristine = original.read_bytes()
    for n in range(FLIPS):
        path = tmp_path / f"e{n}.log"
        path.write_bytes(pristine)
        offset, damaged = flip(path, rng)

        async def reopen(path: Path = path) -> list[tuple[str, dict[str, Any]]] | None:
            store = FileEventStore(path)
            try:
                await store.start()
            except (CorruptDataError, UnavailableError):
                return None
            try:
                return [(e.id, dict(e.data)) for e in await store.read_all()]
            finally:
                await store.aclose()

        read = asyncio.run(reopen())
        if read is not None:
            assert read == written, f"flip at {offset}: events changed or dropped"
            continue
        assert path.read_bytes() == damaged, f"flip at {offset}: the damaged log was changed"
        if offset < 8:
            continue  # the log's magic: the store says it is not (or no longer) an event log
        salvage_event_log(path, tmp_path / f"e{n}.salvaged")
        salvaged = asyncio.run(reopen(tmp_path / f"e{n}.salvaged"))
        assert salvaged is not None
        assert {i for i, _ in salvaged} <= {i for i, _ in written}
        assert len(written) - len(salvaged) <= 3, f"flip at {offset}: more than its batch lost"
        by_id = dict(written)
        assert all(by_id[i] == data for i, data in salvaged)


# -- file cache ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_file_cache_entries(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    items = {f"key-{i}": {"i": i, "text": "é" * i, "list": list(range(i))} for i in range(6)}

    async def run() -> None:
        cache = FileCache(tmp_path)
        await cache.put_many(items)
        files = sorted(await asyncio.to_thread(lambda: list(tmp_path.rglob("*.entry"))))
        for _ in range(FLIPS):
            victim = rng.choice(files)
            before = victim.read_bytes()
            offset, damaged = flip(victim, rng)
            for key, value in items.items():
                location = None
                try:
                    got = await cache.get(key)
                except CorruptDataError as exc:
                    got, location = value, exc.location
                assert location in (None, str(victim)), "the error names another file"
                assert got == value, f"flip at {offset} of {victim.name}: {key} changed"
            with contextlib.suppress(CorruptDataError):
                assert sorted(await cache.keys()) == sorted(items)
            await cache.sweep()
            assert victim.read_bytes() == damaged, "the damaged entry was changed or removed"
            victim.write_bytes(before)

    asyncio.run(run())


# -- JSON Lines stream ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_jsonl_stream(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    payloads = [{"n": n, "word": "w" * (n % 5)} for n in range(12)]

    async def run() -> None:
        stream = JsonlStream(tmp_path)
        await stream.write_stream("s.jsonl", payloads)
        path = tmp_path / "s.jsonl"
        pristine = path.read_bytes()
        for _ in range(FLIPS):
            path.write_bytes(pristine)
            offset, damaged = flip(path, rng)
            error = ""
            got: list[Any] = []
            try:
                got = [m async for m in stream.stream("s.jsonl", StreamOptions(follow=False))]
            except InvalidInputError as exc:
                error = str(exc)
            if error:
                assert "s.jsonl:" in error, "the damaged line is named"
            else:
                assert len(got) == len(payloads), f"flip at {offset}: a line was dropped"
            assert path.read_bytes() == damaged

    asyncio.run(run())


# -- safetensors KV files -------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_safetensors_kv_files(tmp_path: Path, seed: int) -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("safetensors")
    from portfolio_core.adapters.file.cache_persistence import SafetensorsCachePersistence
    from portfolio_core.testing.contracts.cache_persistence import SPEC, make_blocks, same_blocks

    rng = random.Random(seed)
    store = SafetensorsCachePersistence(tmp_path, fsync=False)
    blocks = make_blocks("agent-1", seed, length=5)
    store.save("agent-1", blocks)
    path = store.path_of("agent-1")
    pristine = path.read_bytes()
    for _ in range(FLIPS):
        path.write_bytes(pristine)
        offset, damaged = flip(path, rng)
        try:
            loaded = store.load("agent-1", SPEC)
        except InvalidInputError:
            pass
        else:
            assert same_blocks(loaded, blocks), f"flip at {offset}: changed blocks were loaded"
        assert path.read_bytes() == damaged


# -- SQLite databases -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_sqlite_event_store(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    original = tmp_path / "original.db"

    async def fill() -> list[str]:
        store = SQLiteEventStore(original)
        ids = []
        for b in range(10):
            events = [NewEvent("E", {"b": b, "k": k}) for k in range(3)]
            await store.append(f"s{b % 3}", events)
            ids += [e.id for e in events]
        await store.aclose()
        return ids

    ids = asyncio.run(fill())
    pristine = original.read_bytes()
    outcomes = {"error": 0, "intact": 0}
    for n in range(FLIPS):
        path = tmp_path / f"e{n}.db"
        path.write_bytes(pristine)
        offset, _ = flip(path, rng)

        async def read(path: Path = path) -> list[str] | None:
            store = SQLiteEventStore(path)
            try:
                return [e.id for e in await store.read_all()]
            except PortError:
                return None
            finally:
                with contextlib.suppress(PortError):
                    await store.aclose()

        got = asyncio.run(read())
        if got is None:
            outcomes["error"] += 1
        else:
            outcomes["intact"] += 1
            # SQLite keeps no checksum per row: a flip inside a value (an id here) may go
            # unnoticed, but no row may vanish
            assert len(got) == len(ids), f"flip at {offset}: events were silently dropped"
            assert sum(a != b for a, b in zip(got, ids, strict=True)) <= 1
    assert sum(outcomes.values()) == FLIPS


@pytest.mark.parametrize("seed", SEEDS)
def test_sqlite_cache(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    original = tmp_path / "original.db"
    items = {f"key-{i}": {"i": i} for i in range(20)}

    async def fill() -> None:
        cache = SqliteCache(str(original))
        await cache.put_many(items)
        await cache.aclose()

    asyncio.run(fill())
    pristine = original.read_bytes()
    for n in range(FLIPS):
        path = tmp_path / f"c{n}.db"
        path.write_bytes(pristine)
        offset, _ = flip(path, rng)

        async def read(path: Path = path) -> dict[str, Any] | None:
            cache = SqliteCache(str(path))
            try:
                return await cache.get_many(list(items))
            except PortError:
                return None
            finally:
                with contextlib.suppress(PortError):
                    await cache.aclose()

        got = asyncio.run(read())
        if got is not None:
            assert len(got) >= len(items) - 1, f"flip at {offset}: items were silently dropped"
            # a flip inside one key leaves that item unreachable under its name, nothing more
            assert sum(got.get(k) != v for k, v in items.items()) <= 1


# -- config stores: the file config log, SQLite --------------------------------------------


async def _fill_config(store: Any) -> dict[int, dict[str, Any]]:
    versions: dict[int, dict[str, Any]] = {}
    try:
        for n in range(8):
            changes = {f"app.k{n % 3}": {"n": n, "pad": "x" * (n * 5)}, "app.last": n}
            versions[await store.apply(changes, author="t")] = changes
    finally:
        await store.aclose()
    return versions


async def _config_history(store: Any) -> dict[int, dict[str, Any]] | None:
    try:
        return {c.version: c.updates() for c in await store.history()}
    except PortError:
        return None
    finally:
        with contextlib.suppress(PortError):
            await store.aclose()


@pytest.mark.parametrize("seed", SEEDS)
def test_file_config_log(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    original = tmp_path / "original.log"
    written = asyncio.run(_fill_config(FileConfigStore(original)))
    pristine = original.read_bytes()
    for n in range(FLIPS):
        path = tmp_path / f"c{n}.log"
        path.write_bytes(pristine)
        offset, damaged = flip(path, rng)
        got = asyncio.run(_config_history(FileConfigStore(path)))
        if got is not None:
            assert got == written, f"flip at {offset}: versions changed or dropped"
            continue
        assert path.read_bytes() == damaged, f"flip at {offset}: the damaged log was changed"
        target = tmp_path / f"c{n}.salvaged"
        try:
            salvage_config_log(path, target)
        except InvalidInputError:
            continue  # the log's magic or first record: nothing recognisable to salvage
        salvaged = asyncio.run(_config_history(FileConfigStore(target)))
        assert salvaged is not None, f"flip at {offset}: the salvaged log does not open"
        assert len(written) - len(salvaged) <= 1, f"flip at {offset}: more than one version lost"
        survivors = list(salvaged.values())
        assert all(changes in written.values() for changes in survivors)


@pytest.mark.parametrize("seed", SEEDS)
def test_sqlite_config_store(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    original = tmp_path / "original.db"
    written = asyncio.run(_fill_config(SQLiteConfigStore(original)))
    pristine = original.read_bytes()
    intact = 0
    for n in range(FLIPS):
        path = tmp_path / f"c{n}.db"
        path.write_bytes(pristine)
        offset, _ = flip(path, rng)
        got = asyncio.run(_config_history(SQLiteConfigStore(path)))
        if got is not None:
            intact += 1
            # SQLite keeps no checksum per row: a flip inside a body the JSON parser still
            # reads may go unnoticed, but no version may vanish
            assert sorted(got) == sorted(written), f"flip at {offset}: versions dropped"
            assert sum(got[v] != written[v] for v in written) <= 1
    assert intact, "no damaged copy could be read: the check above never ran"


# -- the SQLite job queue ------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_sqlite_job_queue(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    original = tmp_path / "original.db"

    async def fill() -> dict[str, Any]:
        queue = SQLiteJobQueue(original)
        try:
            return {
                await queue.enqueue(NewJob("t", {"n": n}, queue="q")): {"n": n} for n in range(20)
            }
        finally:
            await queue.aclose()

    jobs = asyncio.run(fill())
    pristine = original.read_bytes()
    intact = 0
    for n in range(FLIPS):
        path = tmp_path / f"q{n}.db"
        path.write_bytes(pristine)
        offset, _ = flip(path, rng)

        async def read(path: Path = path) -> dict[str, Any] | None:
            queue = SQLiteJobQueue(path)
            try:
                listed = await queue.list_jobs("q", JobState.AVAILABLE, limit=100)
                return {job.id: job.payload for job in listed}
            except PortError:
                return None
            finally:
                with contextlib.suppress(PortError):
                    await queue.aclose()

        got = asyncio.run(read())
        if got is not None:
            intact += 1
            assert len(got) == len(jobs), f"flip at {offset}: jobs were silently dropped"
            assert sum(got.get(i) != p for i, p in jobs.items()) <= 1
    assert intact, "no damaged copy could be read: the check above never ran"
