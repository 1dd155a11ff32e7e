"""Group commit in the SQL event stores: concurrent appends share one transaction and one
durable commit, and each keeps its own guarantees (expected version, id checks, atomicity).

SQLite runs with its default (groups written inline on the event loop by the first append of
a group) and with ``inline=False`` (groups written by the store's worker thread); PostgreSQL
sends a group as one message."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports import (
    ConflictError,
    NewEvent,
    StreamState,
    UnavailableError,
    WrongExpectedVersionError,
)
from portfolio_core.testing.concurrency import run_concurrently
from tests.support.postgres import drop_tables

Store = SQLiteEventStore | PostgresEventStore


@pytest.fixture(params=["sqlite_inline", "sqlite_worker_thread", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        table = f"{request.getfixturevalue('unique_name')}_group"
        s = PostgresEventStore(url, table=table, pool_size=2)
    else:
        s = SQLiteEventStore(tmp_path / "events.db", inline=request.param == "sqlite_inline")
    await s.start()
    yield s
    await s.aclose()
    if request.param == "postgres":
        await asyncio.to_thread(drop_tables, url, [table])


def count_commits(store: Store) -> list[str]:
    """Every commit the store makes from now on (a white-box probe): SQLite's COMMIT
    statements, PostgreSQL's append messages (each ends with its COMMIT)."""
    commits: list[str] = []
    if isinstance(store, PostgresEventStore):
        for name in ("_send_many", "_send_append"):
            original = getattr(store, name)

            def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
                commits.append(_name)
                return _original(*args)

            setattr(store, name, counted)
        return commits

    def trace(sql: str) -> None:
        if sql.strip().upper() == "COMMIT":
            commits.append(sql)

    for conn in (store._fast, store._conn):
        if conn is not None:
            conn.set_trace_callback(trace)
    return commits


def batch(i: int, n: int = 3) -> list[NewEvent]:
    return [NewEvent("E", {"writer": i, "k": k}) for k in range(n)]


async def test_concurrent_appends_share_commits(store: Store) -> None:
    commits = count_commits(store)
    results = await run_concurrently(16, lambda i: store.append(f"s{i}", batch(i)))
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert len(commits) < 16, f"{len(commits)} commits for 16 concurrent appends: no grouping"
    events = await store.read_all()
    assert [e.position for e in events] == list(range(1, 49)), "positions not gapless"
    for i in range(16):  # each batch kept its order, its versions and consecutive positions
        mine = [e for e in events if e.stream == f"s{i}"]
        assert [e.version for e in mine] == [1, 2, 3]
        assert [e.data["k"] for e in mine] == [0, 1, 2]
        assert mine[-1].position - mine[0].position == 2, "a batch was interleaved"


async def test_wrong_expected_version_fails_only_that_append(store: Store) -> None:
    await store.append("taken", batch(0, 1))
    commits = count_commits(store)

    async def op(i: int) -> object:
        if i == 3:
            return await store.append("taken", batch(i), StreamState.NO_STREAM)
        return await store.append(f"s{i}", batch(i), StreamState.NO_STREAM)

    results = await run_concurrently(8, op)
    assert isinstance(results[3], WrongExpectedVersionError), results[3]
    assert results[3].actual == 1
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 3)
    assert len(commits) < 7, "the appends were not grouped, so this test proves nothing"
    assert len(await store.read("taken")) == 1, "the refused append wrote events"
    assert len(await store.read_all()) == 1 + 7 * 3


async def test_id_conflict_rolls_back_only_that_batch(store: Store) -> None:
    stored = NewEvent("E", {"first": True})
    await store.append("a", [stored])
    commits = count_commits(store)

    async def op(i: int) -> object:
        if i == 5:  # a new event first, then an id stored elsewhere: nothing may stay
            return await store.append("b", [NewEvent("E", {"new": 1}), stored])
        return await store.append(f"s{i}", batch(i))

    results = await run_concurrently(8, op)
    assert isinstance(results[5], ConflictError), results[5]
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 5)
    assert len(commits) < 7, "the appends were not grouped, so this test proves nothing"
    everything = await store.read_all()
    assert not [e for e in everything if e.stream == "b"], "part of the refused batch stayed"
    assert [e.position for e in everything] == list(range(1, 1 + 1 + 7 * 3)), "gap left"


async def test_exact_retry_in_the_same_group_is_idempotent(store: Store) -> None:
    same = batch(0)
    await store.append("warm", batch(9, 1))
    results = await run_concurrently(
        6,
        lambda i: (
            store.append("s", same, StreamState.NO_STREAM)
            if i < 2
            else store.append(f"o{i}", batch(i))
        ),
    )
    first, second = results[0], results[1]
    assert not isinstance(first, BaseException), first
    assert not isinstance(second, BaseException), second
    assert first.positions == second.positions
    assert len(await store.read("s")) == 3, "a retry inside a group duplicated the batch"


async def test_cancelled_leader_still_writes_its_group(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    await store.start()
    try:
        await run_concurrently(4, lambda i: store.append(f"warm{i}", batch(i, 1)))
        leader = asyncio.create_task(store.append("leader", batch(1)))
        follower = asyncio.create_task(store.append("follower", batch(2)))
        await asyncio.sleep(0)  # the leader queued itself and yields; the follower joins
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        result = await asyncio.wait_for(follower, 5)
        assert result.version == 3
        streams = {e.stream for e in await store.read_all()}
        assert {"leader", "follower"} <= streams, "a cancelled leader dropped its group"
        again = await asyncio.wait_for(store.append("after", batch(3)), 5)
        assert again.version == 3, "the writer role was not given up"
    finally:
        await store.aclose()


async def test_group_waits_for_a_lock_held_elsewhere(tmp_path: Path) -> None:
    """Another connection (another process, in effect) holds the write lock: the group is
    handed to the worker thread, which waits for the lock instead of failing."""
    store = SQLiteEventStore(tmp_path / "events.db")
    await store.start()
    await run_concurrently(4, lambda i: store.append(f"warm{i}", batch(i, 1)))
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        results = await run_concurrently(6, lambda i: store.append(f"s{i}", batch(i)))
    finally:
        release.join()
        other.close()
    assert all(not isinstance(r, BaseException) for r in results), results
    assert len(await store.read_all()) == 4 + 18
    await store.aclose()


async def test_unsendable_value_fails_only_its_append(store: Store) -> None:
    """A value the driver cannot send (a lone surrogate cannot be UTF-8) fails its own
    append; the others of its group are written."""
    await run_concurrently(4, lambda i: store.append(f"warm{i}", batch(i, 1)))

    async def op(i: int) -> object:
        if i == 2:
            return await store.append("bad", [NewEvent("E", {"x": "\ud800"})])
        return await store.append(f"s{i}", batch(i))

    results = await run_concurrently(6, op)
    assert isinstance(results[2], Exception), results[2]
    assert all(not isinstance(r, BaseException) for i, r in enumerate(results) if i != 2)
    streams = {e.stream for e in await store.read_all()}
    assert "bad" not in streams
    assert {f"s{i}" for i in range(6) if i != 2} <= streams


async def test_appends_queued_at_close_fail_cleanly(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.db", inline=False)
    await store.start()
    tasks = [asyncio.create_task(store.append(f"s{i}", batch(i))) for i in range(20)]
    await asyncio.sleep(0)
    await store.aclose()
    done, pending = await asyncio.wait(tasks, timeout=5)
    assert not pending, "appends queued when the store closed never returned"
    outcomes = [t.exception() for t in done]
    assert all(e is None or isinstance(e, UnavailableError) for e in outcomes), outcomes
    reopened = SQLiteEventStore(tmp_path / "events.db")
    try:
        stored = {e.stream for e in await reopened.read_all()}
        succeeded = {f"s{i}" for i, t in enumerate(tasks) if t.exception() is None}
        assert stored == succeeded, "an append reported written is missing, or the reverse"
    finally:
        await reopened.aclose()


async def test_postgres_keeps_two_sends_in_flight(postgres_url: str, unique_name: str) -> None:
    """While one send waits on the server for the append lock, the appends arriving meanwhile
    go as one more send (two lanes, two pooled connections), not a third: the next group is
    already at the server when the lock frees. All land, in one gapless run of positions."""
    import psycopg

    table = f"{unique_name}_lanes"
    store = PostgresEventStore(postgres_url, table=table, pool_size=3)
    await store.start()
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND pid <> pg_backend_pid()"
    )
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as other:
            await other.execute("SELECT pg_advisory_lock(hashtext(%s))", (store._lock_key(""),))
            appends = asyncio.gather(
                *(store.append(f"s{i}", batch(i)) for i in range(6)), return_exceptions=True
            )
            seen = 0
            for _ in range(200):
                seen = (await (await other.execute(waiting)).fetchone())[0]  # type: ignore[index]
                if seen >= 2:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # a third send, if any, would queue on the lock by now
            seen = (await (await other.execute(waiting)).fetchone())[0]  # type: ignore[index]
            await other.execute("SELECT pg_advisory_unlock(hashtext(%s))", (store._lock_key(""),))
            results = await appends
        assert seen == 2, f"{seen} sends waited on the append lock, not 2"
        assert all(not isinstance(r, BaseException) for r in results), results
        events = await store.read_all()
        assert [e.position for e in events] == list(range(1, 19))
        assert sorted({e.stream for e in events}) == [f"s{i}" for i in range(6)]
    finally:
        await store.aclose()
        await asyncio.to_thread(drop_tables, postgres_url, [table])
