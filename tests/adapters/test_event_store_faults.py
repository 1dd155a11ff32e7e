"""Faults and races across processes: SIGKILL mid-append (file, SQLite) and writers racing
with expected versions from threads and from two processes (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.file.event_store import FileEventStore
from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from tests.adapters.event_store_worker import open_store, race
from tests.support.postgres import drop_tables

ROOT = Path(__file__).resolve().parents[2]


def worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.adapters.event_store_worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("kind", "writers"),
    [("file", 1), ("sqlite", 1), ("sqlite", 8)],
    ids=["file", "sqlite", "sqlite_group_commit"],
)
def test_sigkill_mid_appends_loses_no_acknowledged_batch(
    tmp_path: Path, kind: str, writers: int
) -> None:
    target = str(tmp_path / ("events.log" if kind == "file" else "events.db"))
    acked: list[str] = []
    for _round in range(2):  # kill, reopen, kill again: recovery keeps working
        proc = worker("crash", kind, target, str(writers))
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        start = len(acked)
        try:
            for line in proc.stdout:
                acked.append(line.split()[1])
                if len(acked) - start >= 40 or time.monotonic() > deadline:
                    break
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            proc.stdout.close()
            assert proc.stderr is not None
            proc.stderr.close()
        assert len(acked) - start >= 40, "the writer did not acknowledge enough appends"

        async def check() -> None:
            store = open_store(kind, target)
            await store.start()
            events = await store.read_all()
            await store.aclose()
            batches: dict[str, list[int]] = {}
            for e in events:
                batches.setdefault(e.data["n"], []).append(e.data["k"])
            assert all(ks == [0, 1, 2, 3] for ks in batches.values()), "a batch is partial"
            missing = set(acked) - set(batches)
            assert not missing, f"acknowledged batches lost: {sorted(missing)[:5]}"
            assert [e.position for e in events] == list(range(1, len(events) + 1))

        asyncio.run(check())


@pytest.fixture(params=["memory", "file", "sqlite", "postgres"])
def race_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    kind = request.param
    if kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        table = request.getfixturevalue("unique_name") + "_race"
        yield kind, f"{url}#{table}"
        drop_tables(url, [table])
    else:
        yield kind, str(tmp_path / ("events.log" if kind == "file" else "events.db"))


def _check_race(events: list[Any], writers: int, count: int) -> None:
    assert [e.version for e in events] == list(range(1, writers * count + 1))
    pairs = sorted((e.data["w"], e.data["k"]) for e in events)
    assert pairs == [(w, k) for w in range(writers) for k in range(count)], "lost or duplicated"


def test_eight_threads_race_on_one_stream(race_target: tuple[str, str]) -> None:
    kind, target = race_target
    count = 5
    shared: Any = None
    if kind in ("memory", "file"):  # one in-process store shared by every thread
        shared = MemoryEventStore() if kind == "memory" else FileEventStore(target, fsync="never")
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def thread(w: int) -> None:
        async def body() -> None:
            store = shared if shared is not None else open_store(kind, target)
            if shared is None:
                await store.start()
            barrier.wait(30)
            try:
                await race(store, w, count)
            finally:
                if shared is None:
                    await store.aclose()

        try:
            asyncio.run(body())
        except BaseException as exc:
            errors.append(exc)

    if isinstance(shared, FileEventStore):
        asyncio.run(shared.start())
    threads = [threading.Thread(target=thread, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors

    async def check() -> None:
        store = shared if shared is not None else open_store(kind, target)
        if shared is None:
            await store.start()
        _check_race(await store.read("race"), 8, count)
        await store.aclose()

    asyncio.run(check())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_processes_race_on_one_stream(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        table = request.getfixturevalue("unique_name") + "_prace"
        target = f"{url}#{table}"
        request.addfinalizer(lambda: drop_tables(url, [table]))
    else:
        target = str(tmp_path / "events.db")
    store: Any = open_store(kind, target)
    asyncio.run(store.start())  # create the schema once, before the race
    asyncio.run(store.aclose())
    count = 5
    procs = [worker("race", kind, target, str(first), "4", str(count)) for first in (0, 4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    async def check() -> None:
        s: SQLiteEventStore | PostgresEventStore = open_store(kind, target)
        await s.start()
        _check_race(await s.read("race"), 8, count)
        await s.aclose()

    asyncio.run(check())
