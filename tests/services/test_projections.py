"""The projection runner: catch-up then live, selections, error policies, pause/resume, lag in
health and telemetry, one active runner of several, blue/green rebuilds, and kills."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.memory.projection_store import MemoryProjectionStore
from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.projection_store import (
    PostgresProjectionStore,
    SQLiteProjectionStore,
)
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports.errors import UnavailableError
from portfolio_core.ports.event_store import NewEvent, RecordedEvent
from portfolio_core.services.projections import (
    ProjectionRunner,
    ProjectionStatus,
    RunnerState,
    Selection,
    log_head,
    projection_status,
    rebuild,
)
from tests.support.postgres import drop_tables
from tests.support.projections import read_model_handler

ROOT = Path(__file__).resolve().parents[2]


async def fill(events: Any, count: int, *, stream: str = "order-1", start: int = 1) -> None:
    for i in range(0, count, 50):
        batch = [
            NewEvent("Added" if (start + j) % 2 else "Removed", {"n": start + j})
            for j in range(i, min(i + 50, count))
        ]
        await events.append(stream, batch)


class Recorder:
    """A handler remembering every event it was given (an at-least-once read model)."""

    def __init__(self) -> None:
        self.seen: list[RecordedEvent] = []
        self.txs: list[Any] = []

    async def __call__(self, events: Sequence[RecordedEvent], tx: Any) -> None:
        self.seen.extend(events)
        self.txs.append(tx)

    @property
    def numbers(self) -> list[int]:
        return [e.data["n"] for e in self.seen]


@pytest.fixture
async def memory() -> AsyncIterator[tuple[MemoryEventStore, MemoryProjectionStore]]:
    events = MemoryEventStore()
    yield events, MemoryProjectionStore()
    await events.aclose()


async def test_catch_up_then_live(memory: tuple[MemoryEventStore, MemoryProjectionStore]) -> None:
    events, store = memory
    await fill(events, 120)
    handler = Recorder()
    runner = ProjectionRunner(
        events, store, "p", handler, batch_size=25, idle_interval=0.02, lease_ttl=5
    )
    await runner.start()
    try:
        await runner.wait_until(120, timeout=10)
        await fill(events, 30, start=121)  # live
        await runner.wait_until(150, timeout=10)
    finally:
        await runner.stop()
    assert handler.numbers == list(range(1, 151))
    assert handler.txs == [None] * len(handler.txs), "a non-transactional store passed a tx"
    assert await store.checkpoint("p") == 150
    assert runner.state is RunnerState.STOPPED


async def test_selection_by_type_and_stream_prefix(
    memory: tuple[MemoryEventStore, MemoryProjectionStore],
) -> None:
    events, store = memory
    await fill(events, 10, stream="order-1")
    await fill(events, 10, stream="cart-1", start=11)
    await fill(events, 10, stream="order-2", start=21)
    by_prefix, by_type = Recorder(), Recorder()
    await ProjectionRunner(
        events, store, "orders", by_prefix, selection=Selection(stream_prefix="order-")
    ).run_until_caught_up(timeout=10)
    await ProjectionRunner(
        events,
        store,
        "added-carts",
        by_type,
        selection=Selection(types=frozenset({"Added"}), stream_prefix="cart-"),
    ).run_until_caught_up(timeout=10)
    assert by_prefix.numbers == [*range(1, 11), *range(21, 31)]
    assert by_type.numbers == [11, 13, 15, 17, 19]
    # events not selected are passed over: both checkpoints reached the end of the log
    assert await store.checkpoint("orders") == await store.checkpoint("added-carts") == 30


async def test_handler_error_stops_without_moving_the_checkpoint(
    memory: tuple[MemoryEventStore, MemoryProjectionStore],
) -> None:
    events, store = memory
    await fill(events, 40)

    async def handler(batch: Sequence[RecordedEvent], tx: Any) -> None:
        if any(e.data["n"] == 23 for e in batch):
            raise ValueError("cannot handle 23")

    runner = ProjectionRunner(events, store, "p", handler, batch_size=10, idle_interval=0.01)
    await runner.start()
    with pytest.raises(ValueError, match="cannot handle 23"):
        await runner.wait_until(40, timeout=10)
    assert runner.state is RunnerState.FAILED
    assert await store.checkpoint("p") == 20, "the checkpoint moved past the failed batch"
    assert runner.health()["error"] == "ValueError: cannot handle 23"
    with pytest.raises(UnavailableError, match="stopped"):
        await runner.ping()
    # the lease was released: a fixed runner takes over at once, from the checkpoint
    fixed = Recorder()
    await ProjectionRunner(events, store, "p", fixed, lease_ttl=60).run_until_caught_up(10)
    assert fixed.numbers == list(range(21, 41))
    await runner.stop()


async def test_retry_policy_retries_then_stops(
    memory: tuple[MemoryEventStore, MemoryProjectionStore],
) -> None:
    events, store = memory
    await fill(events, 10)
    calls: list[int] = []

    async def flaky(batch: Sequence[RecordedEvent], tx: Any) -> None:
        calls.append(batch[0].data["n"])
        if len(calls) <= 2:
            raise ConnectionError("read model busy")

    runner = ProjectionRunner(
        events,
        store,
        "p",
        flaky,
        on_error="retry",
        retries=3,
        retry_backoff=0.01,
        idle_interval=0.01,
    )
    await runner.start()
    await runner.wait_until(10, timeout=10)
    await runner.stop()
    assert calls == [1, 1, 1], "the failed batch was not retried from its start"

    async def broken(batch: Sequence[RecordedEvent], tx: Any) -> None:
        calls.append(-1)
        raise ConnectionError("read model gone")

    calls.clear()
    await fill(events, 5, start=11)
    runner = ProjectionRunner(
        events,
        store,
        "p",
        broken,
        on_error="retry",
        retries=2,
        retry_backoff=0.01,
        idle_interval=0.01,
    )
    await runner.start()
    with pytest.raises(ConnectionError):
        await runner.wait_until(15, timeout=10)
    assert calls == [-1, -1, -1], "not 1 try + 2 retries"
    assert await store.checkpoint("p") == 10
    await runner.stop()


async def test_pause_keeps_the_lease_and_resume_goes_on(
    memory: tuple[MemoryEventStore, MemoryProjectionStore],
) -> None:
    events, store = memory
    await fill(events, 10)
    first, second = Recorder(), Recorder()
    active = ProjectionRunner(events, store, "p", first, idle_interval=0.01, lease_ttl=1.0)
    standby = ProjectionRunner(events, store, "p", second, idle_interval=0.01, lease_ttl=1.0)
    await active.run_until_caught_up(timeout=5)
    active.pause()
    await active.start()
    await standby.start()
    await fill(events, 10, start=11)
    await asyncio.sleep(1.5)  # longer than the ttl: the paused runner kept renewing
    assert active.state is RunnerState.PAUSED
    assert standby.state is RunnerState.STANDBY
    assert await store.checkpoint("p") == 10
    active.resume()
    await active.wait_until(20, timeout=5)
    await active.stop()
    await standby.stop()
    assert first.numbers == list(range(1, 21))
    assert second.seen == []


async def test_every_runner_in_a_process_reports_its_lag(
    memory: tuple[MemoryEventStore, MemoryProjectionStore],
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    events, store = memory
    await fill(events, 300)
    runners = [
        ProjectionRunner(events, store, name, Recorder(), batch_size=100, meter_provider=provider)
        for name in ("first", "second")
    ]
    for runner in runners:
        await runner.start()
        await runner.wait_until(300, timeout=10)
    data = reader.get_metrics_data()
    assert data is not None
    lags = {
        p.attributes["portfolio.projection"]: p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "portfolio.projection.lag"
        for p in m.data.data_points
        if p.attributes is not None
    }
    for runner in runners:
        await runner.stop()
    assert set(lags) == {"first", "second"}, f"reported: {lags}"


async def test_lag_in_health_ping_and_telemetry(
    memory: tuple[MemoryEventStore, MemoryProjectionStore],
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    events, store = memory
    await fill(events, 1000)
    runner = ProjectionRunner(
        events,
        store,
        "lagging",
        Recorder(),
        batch_size=100,
        max_healthy_lag=500,
        meter_provider=provider,
    )
    await runner.step()
    assert (runner.checkpoint, runner.head, runner.lag) == (100, 1000, 900)
    assert runner.health()["lag"] == 900
    with pytest.raises(UnavailableError, match="900 positions behind"):
        await runner.ping()
    await runner.start()
    await runner.wait_until(1000, timeout=10)
    assert runner.lag == 0
    await runner.ping()
    data = reader.get_metrics_data()
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "portfolio.projection.lag"
        for p in m.data.data_points
        if p.attributes is not None and p.attributes.get("portfolio.projection") == "lagging"
    ]
    assert [p.value for p in points] == [0], "the lag gauge did not report the lag"
    await runner.stop()


# -- SQL read models: exactly once ---------------------------------------------------------------


async def sqlite_rows(path: Path, table: str) -> list[tuple[int, int]]:
    import sqlite3

    def read() -> list[tuple[int, int]]:
        with sqlite3.connect(path) as conn:
            return conn.execute(f"SELECT position, n FROM {table} ORDER BY position").fetchall()

    return await asyncio.to_thread(read)


async def test_two_runners_on_sqlite_only_one_processes(tmp_path: Path) -> None:
    events = SQLiteEventStore(tmp_path / "events.db")
    await events.start()
    await fill(events, 300)
    stores = [SQLiteProjectionStore(tmp_path / "read.db") for _ in range(2)]
    runners = [
        ProjectionRunner(
            events,
            store,
            "orders",
            read_model_handler("sqlite", "orders"),
            batch_size=20,
            lease_ttl=1.0,
            idle_interval=0.05,
            owner=f"runner-{i}",
        )
        for i, store in enumerate(stores)
    ]
    for runner in runners:
        await runner.start()
    for _ in range(200):  # both have made their first claim (a busy machine may be slow)
        states = sorted(str(r.state) for r in runners)
        if "stopped" not in states:
            break
        await asyncio.sleep(0.05)
    assert states == ["active", "standby"], states
    active = next(r for r in runners if r.state is RunnerState.ACTIVE)
    standby = next(r for r in runners if r is not active)
    await active.wait_until(300, timeout=20)
    assert standby.processed == 0, "the standby runner processed events"
    # the active one goes away without releasing (a crash): the standby takes over after ttl
    assert active._task is not None
    active._task.cancel()
    await fill(events, 100, start=301)
    await standby.wait_until(400, timeout=20)
    rows = await sqlite_rows(tmp_path / "read.db", "orders")
    assert [n for _, n in rows] == list(range(1, 401)), "an event was missed or repeated"
    for runner in runners:
        await runner.stop()
    for store in stores:
        await store.aclose()
    await events.aclose()


class SlowLog:
    """An event log whose reads take ``delay`` seconds (a runner stalled mid-step)."""

    def __init__(self, events: Any, delay: float) -> None:
        self.events, self.delay = events, delay

    async def read_all(self, from_position: int = 1, limit: int | None = None) -> Any:
        found = await self.events.read_all(from_position, limit)
        await asyncio.sleep(self.delay)
        return found


async def test_lease_lost_before_commit_commits_nothing(tmp_path: Path) -> None:
    """A runner stalls past its lease between reading a batch and committing it; another
    runner takes the lease and applies the events; the stalled batch is refused (LeaseLost)
    and rolled back, so no event's effect is applied twice."""
    events = SQLiteEventStore(tmp_path / "events.db")
    await events.start()
    await fill(events, 10)
    slow_store, fast_store = (SQLiteProjectionStore(tmp_path / "read.db") for _ in range(2))
    slow = ProjectionRunner(
        SlowLog(events, 1.0),  # type: ignore[arg-type]
        slow_store,
        "p",
        read_model_handler("sqlite", "rm"),
        lease_ttl=0.4,
        idle_interval=0.1,
    )
    stalled = asyncio.ensure_future(slow.step())
    await asyncio.sleep(0.6)  # the slow runner's lease expired while it read
    fast = ProjectionRunner(
        events, fast_store, "p", read_model_handler("sqlite", "rm"), lease_ttl=5
    )
    await fast.run_until_caught_up(timeout=10)
    assert await stalled == 0, "a batch read under a lost lease was committed"
    assert slow.state is RunnerState.STANDBY
    rows = await sqlite_rows(tmp_path / "read.db", "rm")
    assert [n for _, n in rows] == list(range(1, 11)), "an event was applied twice"
    for store in (slow_store, fast_store):
        await store.aclose()
    await events.aclose()


async def test_blue_green_rebuild_on_sqlite(tmp_path: Path) -> None:
    import sqlite3

    events = SQLiteEventStore(tmp_path / "events.db")
    await events.start()
    await fill(events, 200)
    store = SQLiteProjectionStore(tmp_path / "read.db")
    blue = ProjectionRunner(events, store, "orders@1", read_model_handler("sqlite", "orders_1"))
    await blue.run_until_caught_up(timeout=20)

    def point_view(table: str) -> None:
        with sqlite3.connect(tmp_path / "read.db", isolation_level=None) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DROP VIEW IF EXISTS orders")
            conn.execute(f"CREATE VIEW orders AS SELECT * FROM {table}")
            conn.execute("COMMIT")

    def served() -> list[int]:
        with sqlite3.connect(tmp_path / "read.db") as conn:
            return [r[0] for r in conn.execute("SELECT n FROM orders ORDER BY position")]

    await asyncio.to_thread(point_view, "orders_1")
    reads_during: list[int] = []

    async def swap() -> None:
        reads_during.append(len(await asyncio.to_thread(served)))  # old one still serving
        await asyncio.to_thread(point_view, "orders_2")

    await fill(events, 50, start=201)
    green = await rebuild(
        events, store, "orders@2", read_model_handler("sqlite", "orders_2"), swap, timeout=30
    )
    assert reads_during == [200], "the old read model did not serve during the rebuild"
    assert await asyncio.to_thread(served) == list(range(1, 251))
    with pytest.raises(ValueError, match="new name"):
        await rebuild(events, store, "orders@2", read_model_handler("sqlite", "x"), swap)
    assert green.checkpoint == 250
    await store.aclose()
    await events.aclose()


# -- kills ---------------------------------------------------------------------------------------


def start_worker(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.projection_worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def kill_mid_batch(worker: subprocess.Popen[str], batches: int) -> None:
    """SIGKILL the worker while it applies its ``batches``-th batch."""
    assert worker.stdout is not None
    seen = 0
    for line in worker.stdout:
        if line.startswith("applying"):
            seen += 1
            if seen == batches:
                break
    else:  # pragma: no cover - the worker died first
        raise AssertionError(
            f"the worker ended early: {worker.stderr.read() if worker.stderr else ''}"
        )
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)


async def test_sigkill_mid_batch_sqlite_resumes_exactly_once(tmp_path: Path) -> None:
    events = SQLiteEventStore(tmp_path / "events.db")
    await events.start()
    await fill(events, 400)
    worker = start_worker("sqlite", str(tmp_path / "events.db"), str(tmp_path / "read.db"), "rm")
    await asyncio.to_thread(kill_mid_batch, worker, 3)
    store = SQLiteProjectionStore(tmp_path / "read.db")
    checkpoint = await store.checkpoint("kill-test")
    assert 0 < checkpoint < 400, f"the kill did not land mid-run (checkpoint {checkpoint})"
    runner = ProjectionRunner(
        events, store, "kill-test", read_model_handler("sqlite", "rm"), idle_interval=0.1
    )
    await runner.run_until_caught_up(timeout=30)  # waits out the dead worker's lease
    rows = await sqlite_rows(tmp_path / "read.db", "rm")
    assert [n for _, n in rows] == list(range(1, 401)), "an event was missed or repeated"
    await store.aclose()
    await events.aclose()


async def test_sigkill_mid_batch_postgres_resumes_exactly_once(
    postgres_url: str, unique_name: str
) -> None:
    import psycopg

    events = PostgresEventStore(postgres_url, table=f"{unique_name}_ev", pool_size=1)
    await events.start()
    try:
        await fill(events, 300)
        worker = start_worker("postgres", postgres_url, f"{unique_name}_ev", f"{unique_name}_rm")
        await asyncio.to_thread(kill_mid_batch, worker, 3)
        store = PostgresProjectionStore(postgres_url, table=f"{unique_name}_rm_cp")
        checkpoint = await store.checkpoint("kill-test")
        assert 0 < checkpoint < 300, f"the kill did not land mid-run (checkpoint {checkpoint})"
        runner = ProjectionRunner(
            events,
            store,
            "kill-test",
            read_model_handler("postgres", f"{unique_name}_rm"),
            idle_interval=0.1,
        )
        await runner.run_until_caught_up(timeout=30)
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            cursor = await conn.execute(f"SELECT n FROM {unique_name}_rm ORDER BY position")
            numbers = [r[0] for r in await cursor.fetchall()]
        assert numbers == list(range(1, 301)), "an event was missed or repeated"
        await store.aclose()
    finally:
        await events.aclose()
        await asyncio.to_thread(
            drop_tables,
            postgres_url,
            [f"{unique_name}_ev", f"{unique_name}_rm", f"{unique_name}_rm_cp"],
        )


async def test_log_head_finds_the_last_position_from_any_known_one(
    memory: tuple[MemoryEventStore, MemoryProjectionStore],
) -> None:
    events, _ = memory
    assert await log_head(events) == 0, "an empty log's head is 0"
    await fill(events, 1234)
    for known, step in [(0, 1), (0, 500), (1, 7), (1000, 3), (1234, 500)]:
        assert await log_head(events, known, step) == 1234, (known, step)


async def test_projection_status_reads_the_checkpoint_and_head_from_the_stores(
    memory: tuple[MemoryEventStore, MemoryProjectionStore],
) -> None:
    """No runner needed: the status of a projection run elsewhere (here: one that ran and
    stopped) is its durable checkpoint against the log's head."""
    events, store = memory
    await fill(events, 300)
    runner = ProjectionRunner(events, store, "elsewhere", Recorder(), batch_size=100)
    await runner.step()
    await fill(events, 50, start=301)
    status = await projection_status(events, store, "elsewhere", max_healthy_lag=200)
    assert status == ProjectionStatus("elsewhere", 100, 350, 200)
    assert (status.lag, status.healthy) == (250, False)
    never = await projection_status(events, store, "never-run")
    assert (never.checkpoint, never.head, never.lag, never.healthy) == (0, 350, 350, True)
