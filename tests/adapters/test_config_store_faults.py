"""ConfigStore faults: a process killed in the middle of applies leaves every batch whole or
absent (file, SQLite), and a watcher whose connection drops resumes with no gap
(PostgreSQL, Redis, behind a loopback proxy the test controls).

Stale expected versions, rollbacks to unknown versions and values a schema rejects are
clauses of the contract suite (config_store.apply.expected_version, .rollback.unknown,
.schema), run against every adapter."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from portfolio_core.adapters.file.config_store import FileConfigStore
from portfolio_core.adapters.sql.config_store import PostgresConfigStore, SQLiteConfigStore
from portfolio_core.ports import ChangeSet, ConfigStore
from portfolio_core.testing.faults import BackgroundFaultProxy
from tests.adapters.config_store_support import drop_keys, drop_tables
from tests.adapters.config_store_worker import KEYS

ROOT = Path(__file__).resolve().parents[2]


def _kill_during_applies(kind: str, path: Path, acks: int) -> int:
    """Run the worker until it acknowledged ``acks`` more batches, SIGKILL it; return the
    last acknowledged batch number."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.adapters.config_store_worker", kind, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = 0
    try:
        for _ in range(acks):
            line = proc.stdout.readline()
            assert line, "the worker stopped before it was killed"
            last = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    return last


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_a_process_killed_mid_apply_leaves_each_batch_whole_or_absent(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / ("c.log" if kind == "file" else "c.db")
    acknowledged = 0
    for _ in range(3):  # three kills, each at an arbitrary point of a stream of applies
        acknowledged = _kill_during_applies(kind, path, 5)

    async def check() -> None:
        store: ConfigStore = FileConfigStore(path) if kind == "file" else SQLiteConfigStore(path)
        try:
            version = await store.current_version()
            assert version >= acknowledged, "an acknowledged batch was lost"
            for change_set in await store.history():
                values = change_set.updates()
                assert len(values) == KEYS, f"version {change_set.version} is partial"
                assert {v[0] for v in values.values()} == {change_set.version}
            current = await store.read()
            assert {v[0] for v in current.values.values()} == {version}
        finally:
            await store.aclose()

    asyncio.run(check())


async def _watch_across_a_drop(
    proxy: BackgroundFaultProxy, watched: ConfigStore, direct: ConfigStore
) -> None:
    watcher: AsyncIterator[ChangeSet] = watched.watch("app.", from_version=0)
    got: list[int] = []

    async def next_version() -> int:
        change = await asyncio.wait_for(anext(watcher), 20)
        return change.version

    try:
        await direct.apply({"app.n": 1})
        got.append(await next_version())
        proxy.stall()  # the watcher's connections hang ...
        await direct.apply({"app.n": 2})
        await direct.apply({"other": 0})
        await direct.apply({"app.n": 3})
        proxy.cut()  # ... then drop
        await direct.apply({"app.n": 4})
        proxy.restore()
        got.extend([await next_version() for _ in range(3)])
        await direct.apply({"app.n": 5})
        got.append(await next_version())
    finally:
        await watcher.aclose()  # type: ignore[attr-defined]
    assert got == [1, 2, 4, 5, 6], f"the watcher skipped or repeated versions: {got}"


def test_a_postgres_watcher_resumes_after_its_connection_drops(
    postgres_url: str, unique_name: str
) -> None:
    proxy = BackgroundFaultProxy(postgres_url)

    async def scenario() -> None:
        watched = PostgresConfigStore(proxy.url(postgres_url), table=unique_name)
        direct = PostgresConfigStore(postgres_url, table=unique_name)
        try:
            await _watch_across_a_drop(proxy, watched, direct)
            assert watched.reconnects >= 1, "the listener never reconnected"
        finally:
            await watched.aclose()
            await direct.aclose()

    try:
        asyncio.run(scenario())
    finally:
        proxy.close()
        drop_tables(postgres_url, [unique_name])


def test_a_redis_watcher_resumes_after_its_connection_drops(
    redis_url: str, unique_name: str
) -> None:
    from portfolio_core.adapters.redis.config_store import RedisConfigStore

    proxy = BackgroundFaultProxy(redis_url)

    async def scenario() -> None:
        make: Callable[[str], RedisConfigStore] = lambda url: RedisConfigStore(  # noqa: E731
            url, namespace=unique_name, poll_interval=1.0
        )
        watched, direct = make(proxy.url(redis_url)), make(redis_url)
        try:
            await _watch_across_a_drop(proxy, watched, direct)
        finally:
            await watched.aclose()
            await direct.aclose()
            await drop_keys(redis_url, unique_name)

    try:
        asyncio.run(scenario())
    finally:
        proxy.close()
