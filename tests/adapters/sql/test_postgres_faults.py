"""PostgreSQL goes away and comes back, through a loopback proxy the test controls, for every
PostgreSQL adapter (event store, cache, config store, job queue).

* cut (connections reset, new ones refused): every call fails fast with the port's
  retryable ``UnavailableError`` -- never a hang, never a driver exception;
* stalled (connections open, nothing answers): every call, and ``start()``, fails within the
  adapter's deadline with ``UnavailableError``;
* restored: the next call succeeds, on a fresh connection, without restarting the adapter.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from portfolio_core.adapters.sql.cache import PostgresCache
from portfolio_core.adapters.sql.config_store import PostgresConfigStore
from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.postgres_job_queue import PostgresJobQueue
from portfolio_core.ports import NewEvent, NewJob, PortError, RecordedEvent, UnavailableError
from portfolio_core.testing.faults import BackgroundFaultProxy
from tests.support.cli import run_cli

CONNECT = 1.0
"""connect_timeout given to every adapter here (seconds)."""
CALL = 1.5
"""call_timeout given to every adapter here (seconds)."""
FAST = 1.0
"""A cut is noticed at once: a failing call takes less than this."""
SLACK = 1.5
"""Seconds a stalled call may take beyond its deadline (scheduling on a loaded machine)."""


@dataclass(frozen=True)
class Case:
    make: Callable[[str, str], Any]
    """(url, table) -> an adapter, not started."""
    call: Callable[[Any, int], Awaitable[object]]
    """One representative use of the server (a write and a read)."""


async def _events(store: PostgresEventStore, n: int) -> object:
    await store.append("s", [NewEvent("Tick", {"n": n})])
    return await store.read("s", from_version=1)


async def _cache(cache: PostgresCache, n: int) -> object:
    await cache.put(f"k{n}", n)
    assert await cache.get(f"k{n}") == n
    return None


async def _config(store: PostgresConfigStore, n: int) -> object:
    await store.apply({"app.n": n})
    return await store.get("app.n")


async def _jobs(queue: PostgresJobQueue, n: int) -> object:
    await queue.enqueue(NewJob("t", n, queue="q"))
    return await queue.counts("q")


CASES = {
    "event_store": Case(
        lambda url, table: PostgresEventStore(
            url, table=table, pool_size=4, connect_timeout=CONNECT, call_timeout=CALL
        ),
        _events,
    ),
    "cache": Case(
        lambda url, table: PostgresCache(
            url, table=table, connect_timeout=CONNECT, call_timeout=CALL
        ),
        _cache,
    ),
    "config_store": Case(
        lambda url, table: PostgresConfigStore(
            url, table=table, connect_timeout=CONNECT, call_timeout=CALL
        ),
        _config,
    ),
    "job_queue": Case(
        lambda url, table: PostgresJobQueue(
            url, table=table, pool_size=4, connect_timeout=CONNECT, call_timeout=CALL
        ),
        _jobs,
    ),
}


@pytest.fixture
def tables(postgres_url: str, unique_name: str) -> Iterator[Callable[[], str]]:
    made: list[str] = []
    numbers = itertools.count()

    def new() -> str:
        made.append(f"{unique_name}_f{next(numbers)}")
        return made[-1]

    yield new
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in made:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[BackgroundFaultProxy]:
    with BackgroundFaultProxy(postgres_url) as running:
        yield running


async def _fails_within(call: Awaitable[object], seconds: float) -> UnavailableError:
    started = time.monotonic()
    with pytest.raises(PortError) as caught:
        await asyncio.wait_for(call, seconds + 30)  # a hang fails here, not forever
    elapsed = time.monotonic() - started
    assert isinstance(caught.value, UnavailableError), f"not UnavailableError: {caught.value!r}"
    assert caught.value.retryable
    assert elapsed < seconds, f"the call took {elapsed:.1f} s, more than {seconds} s"
    return caught.value


async def _close(adapter: Any) -> None:
    started = time.monotonic()
    await asyncio.wait_for(adapter.aclose(), 30)
    assert time.monotonic() - started < CALL + SLACK, "aclose() hung on a dead server"


@pytest.mark.parametrize("kind", CASES)
async def test_a_cut_fails_fast_and_the_next_call_after_restore_succeeds(
    kind: str, postgres_url: str, proxy: BackgroundFaultProxy, tables: Callable[[], str]
) -> None:
    case = CASES[kind]
    adapter = case.make(proxy.url(postgres_url), tables())
    try:
        await adapter.start()
        await case.call(adapter, 0)
        proxy.cut()
        for n in range(1, 4):  # every call while cut, not only the first
            await _fails_within(case.call(adapter, n), FAST)
        proxy.restore()
        await case.call(adapter, 10)  # the very first call after restore
        await case.call(adapter, 11)
    finally:
        proxy.restore()
        await _close(adapter)


@pytest.mark.parametrize("kind", CASES)
async def test_a_stalled_server_fails_each_call_within_the_deadline(
    kind: str, postgres_url: str, proxy: BackgroundFaultProxy, tables: Callable[[], str]
) -> None:
    case = CASES[kind]
    adapter = case.make(proxy.url(postgres_url), tables())
    try:
        await adapter.start()
        await case.call(adapter, 0)
        proxy.stall()
        for n in range(1, 3):
            await _fails_within(case.call(adapter, n), CALL + SLACK)
        proxy.restore()
        await case.call(adapter, 10)
        await case.call(adapter, 11)
    finally:
        proxy.restore()
        await _close(adapter)


@pytest.mark.parametrize("kind", CASES)
async def test_start_against_a_stalled_server_fails_within_the_connect_timeout(
    kind: str, postgres_url: str, proxy: BackgroundFaultProxy, tables: Callable[[], str]
) -> None:
    case = CASES[kind]
    adapter = case.make(proxy.url(postgres_url), tables())
    try:
        proxy.stall()
        await _fails_within(adapter.start(), CONNECT + CALL + SLACK)
        proxy.restore()
        await adapter.start()  # nothing half-started is left behind
        await case.call(adapter, 1)
    finally:
        proxy.restore()
        await _close(adapter)


@pytest.mark.parametrize("kind", CASES)
async def test_start_against_a_cut_server_fails_fast(
    kind: str, postgres_url: str, proxy: BackgroundFaultProxy, tables: Callable[[], str]
) -> None:
    case = CASES[kind]
    adapter = case.make(proxy.url(postgres_url), tables())
    try:
        proxy.cut()
        await _fails_within(adapter.start(), FAST)
        proxy.restore()
        await adapter.start()
        await case.call(adapter, 1)
    finally:
        proxy.restore()
        await _close(adapter)


HEALTH_MANIFEST = """\
schema_version: 1
adapters:
  events:
    port: event_store
    adapter: postgres
    config:
      url: "{url}"
      table: {table}
      connect_timeout: {connect}
      call_timeout: {call}
"""


@pytest.mark.parametrize("fault", ["stall", "cut"])
def test_health_reports_unhealthy_within_the_deadline_instead_of_hanging(
    fault: str,
    postgres_url: str,
    proxy: BackgroundFaultProxy,
    tables: Callable[[], str],
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        HEALTH_MANIFEST.format(
            url=proxy.url(postgres_url), table=tables(), connect=CONNECT, call=CALL
        )
    )
    getattr(proxy, fault)()
    started = time.monotonic()
    done = run_cli("health", str(manifest), timeout=60)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "UNHEALTHY" in output
    assert "overall: unhealthy" in output
    assert "Traceback" not in output
    # the interpreter's start and imports come on top of the deadline
    assert elapsed < CONNECT + CALL + 20, f"health took {elapsed:.1f} s"


async def _until(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition()`` holds; fails after ``seconds``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_stalled_subscription_listener_is_replaced_and_new_events_arrive(
    postgres_url: str, proxy: BackgroundFaultProxy, tables: Callable[[], str]
) -> None:
    table = tables()
    # the fallback poll is far beyond the test's patience: only the listener can wake
    reader = PostgresEventStore(
        proxy.url(postgres_url),
        table=table,
        pool_size=1,
        poll_interval=600,
        connect_timeout=CONNECT,
        call_timeout=CALL,
    )
    reader.listener_keepalive = 0.2
    writer = PostgresEventStore(postgres_url, table=table, pool_size=1)
    got: list[int] = []

    async def handler(event: RecordedEvent) -> None:
        got.append(event.position)

    try:
        await reader.start()
        await writer.start()
        sub = await reader.subscribe(handler)
        first = await writer.append("s", [NewEvent("Tick", {"n": 1})])
        await sub.wait_until(first.positions[-1], timeout=5)
        idle = proxy.accepted
        await asyncio.sleep(1.0)  # five keepalive probes, all answered
        assert proxy.accepted == idle, "a listener whose server answers was replaced"

        proxy.stall()
        # the probe goes unanswered within call_timeout: the listener is dropped and a new
        # one is attempted (held by the stalled proxy, so it fails and is retried)
        await _until(lambda: proxy.accepted > idle, 0.2 + CALL + SLACK)
        proxy.restore()

        second = await writer.append("s", [NewEvent("Tick", {"n": 2})])
        await sub.wait_until(second.positions[-1], timeout=CONNECT + CALL + 5)
        assert got == [1, 2]
        await reader.unsubscribe(sub)
    finally:
        proxy.restore()
        await writer.aclose()
        await _close(reader)
