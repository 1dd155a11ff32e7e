"""Redis goes away and comes back, through a loopback proxy the test controls, for every
Redis adapter (cache, config store, job queue, stream, tenant quotas) and for the boundary's
Redis storages (circuit breaker, rate limiter).

* cut (connections reset, new ones refused): every call fails fast with the port's
  retryable ``UnavailableError`` -- never a hang, never a driver exception;
* stalled (connections open, nothing answers): every call fails within the deadline;
* restored: the next call succeeds, without restarting the adapter.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.redis.cache import RedisCache
from portfolio_core.adapters.redis.config_store import RedisConfigStore
from portfolio_core.adapters.redis.job_queue import RedisJobQueue
from portfolio_core.adapters.redis.stream import RedisStream
from portfolio_core.adapters.redis.tenant import RedisTenant
from portfolio_core.boundary import BreakerStorageError, RateLimitStorageError
from portfolio_core.boundary.breaker import Breaker, make_storage
from portfolio_core.boundary.ratelimit import STORAGE_TIMEOUT, RateLimiter
from portfolio_core.ports import NewJob, PortError, StreamOptions, UnavailableError
from portfolio_core.testing import close_adapter
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
    """(url, namespace) -> an adapter, not started."""
    call: Callable[[Any, int], Awaitable[object]]
    """One representative use of the server (a write and a read)."""


async def _cache(cache: RedisCache, n: int) -> object:
    await cache.put(f"k{n}", n)
    assert await cache.get(f"k{n}") == n
    return None


async def _config(store: RedisConfigStore, n: int) -> object:
    await store.apply({"app.n": n})
    return await store.get("app.n")


async def _jobs(queue: RedisJobQueue, n: int) -> object:
    await queue.enqueue(NewJob("t", n, queue="q"))
    return await queue.counts("q")


async def _stream(stream: RedisStream, n: int) -> object:
    await stream.write_stream("src", [n])
    read = [m.payload async for m in stream.stream("src", StreamOptions(follow=False))]
    assert read[-1] == n
    return read


async def _quota(tenant: RedisTenant, n: int) -> object:
    with tenant.with_tenant("acme"):
        return await tenant.check_quota("requests")


TIMEOUTS = {"connect_timeout": CONNECT, "call_timeout": CALL}
CASES = {
    "cache": Case(lambda url, ns: RedisCache(url, namespace=ns, **TIMEOUTS), _cache),
    "config_store": Case(
        lambda url, ns: RedisConfigStore(url, namespace=ns, poll_interval=0.5, **TIMEOUTS),
        _config,
    ),
    "job_queue": Case(lambda url, ns: RedisJobQueue(url, namespace=ns, **TIMEOUTS), _jobs),
    "stream": Case(lambda url, ns: RedisStream(url, namespace=ns, **TIMEOUTS), _stream),
    "tenant": Case(
        lambda url, ns: RedisTenant(
            url, namespace=ns, quotas={"requests": "100000/minute"}, **TIMEOUTS
        ),
        _quota,
    ),
}


@pytest.fixture
def namespaces(redis_url: str, unique_name: str) -> Iterator[Callable[[], str]]:
    import redis

    made: list[str] = []
    numbers = itertools.count()

    def new() -> str:
        made.append(f"{unique_name}-f{next(numbers)}")
        return made[-1]

    yield new
    client = redis.Redis.from_url(redis_url)
    for namespace in made:
        keys = list(client.scan_iter(f"*{namespace}*"))
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[BackgroundFaultProxy]:
    with BackgroundFaultProxy(redis_url) as running:
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


async def _start(adapter: Any) -> None:
    start = getattr(adapter, "start", None)
    if start is not None:
        await start()


async def _close(adapter: Any) -> None:
    started = time.monotonic()
    await asyncio.wait_for(close_adapter(adapter), 30)
    assert time.monotonic() - started < CALL + SLACK, "aclose() hung on a dead server"


@pytest.mark.parametrize("kind", CASES)
async def test_a_cut_fails_fast_and_the_next_call_after_restore_succeeds(
    kind: str, redis_url: str, proxy: BackgroundFaultProxy, namespaces: Callable[[], str]
) -> None:
    case = CASES[kind]
    adapter = case.make(proxy.url(redis_url), namespaces())
    try:
        await _start(adapter)
        await case.call(adapter, 0)
        proxy.cut()
        for n in range(1, 4):
            await _fails_within(case.call(adapter, n), FAST)
        proxy.restore()
        await case.call(adapter, 10)  # the very first call after restore
        await case.call(adapter, 11)
    finally:
        proxy.restore()
        await _close(adapter)


@pytest.mark.parametrize("kind", CASES)
async def test_a_stalled_server_fails_each_call_within_the_deadline(
    kind: str, redis_url: str, proxy: BackgroundFaultProxy, namespaces: Callable[[], str]
) -> None:
    case = CASES[kind]
    adapter = case.make(proxy.url(redis_url), namespaces())
    try:
        await _start(adapter)
        await case.call(adapter, 0)
        proxy.stall()
        for n in range(1, 3):
            await _fails_within(case.call(adapter, n), CALL + SLACK)
        proxy.restore()
        await asyncio.sleep(0.2)  # replies held during the stall arrive, and are dropped
        await case.call(adapter, 10)
        await case.call(adapter, 11)
    finally:
        proxy.restore()
        await _close(adapter)


@pytest.mark.parametrize("kind", CASES)
async def test_a_first_call_against_a_stalled_server_fails_within_the_deadline(
    kind: str, redis_url: str, proxy: BackgroundFaultProxy, namespaces: Callable[[], str]
) -> None:
    case = CASES[kind]
    adapter = case.make(proxy.url(redis_url), namespaces())
    try:
        proxy.stall()

        async def first() -> object:
            await _start(adapter)
            return await case.call(adapter, 1)

        await _fails_within(first(), CONNECT + CALL + SLACK)
        proxy.restore()
        await _start(adapter)
        await case.call(adapter, 2)
    finally:
        proxy.restore()
        await _close(adapter)


# -- the boundary's storages ------------------------------------------------------------


def _breaker(url: str, name: str) -> Breaker:
    return Breaker(
        name,
        fail_max=2,
        storage=make_storage(url, name, fail_open=False),
        fail_open_on_storage_error=False,
    )


def test_a_fail_closed_breaker_refuses_while_its_storage_is_cut_or_stalled_then_recovers(
    redis_url: str, proxy: BackgroundFaultProxy, namespaces: Callable[[], str]
) -> None:
    name = namespaces()
    breaker = _breaker(proxy.url(redis_url), name)
    shared = _breaker(redis_url, name)  # another process's view, straight to the server
    assert breaker.admit() is False
    for fault, bound in ((proxy.cut, FAST), (proxy.stall, 1.0 + SLACK)):
        fault()
        started = time.monotonic()
        with pytest.raises(BreakerStorageError):
            breaker.admit()
        assert time.monotonic() - started < bound
        proxy.restore()
        time.sleep(0.2)
        assert breaker.admit() is False, "the breaker did not use its storage again"
    breaker.on_failure(RuntimeError("down"), probe=False)
    breaker.on_failure(RuntimeError("down"), probe=False)
    assert shared.health()[0] is False, "the failures after the restore were not shared"


@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_a_fail_closed_rate_limiter_refuses_while_its_storage_is_down_then_recovers(
    fault: str, redis_url: str, proxy: BackgroundFaultProxy, namespaces: Callable[[], str]
) -> None:
    limiter = RateLimiter(
        "1000/minute",
        key=namespaces(),
        storage=proxy.url(redis_url),
        is_async=True,
        fail_open=False,
    )
    await limiter.aacquire()
    getattr(proxy, fault)()
    bound = FAST if fault == "cut" else STORAGE_TIMEOUT + SLACK
    await _fails_within(limiter.aacquire(), bound)
    proxy.restore()
    await asyncio.sleep(0.2)
    await limiter.aacquire()
    proxy.cut()
    with pytest.raises(RateLimitStorageError):  # and the policy still holds after
        await limiter.aacquire()


HEALTH_MANIFEST = """\
schema_version: 1
adapters:
  cache:
    port: cache
    adapter: redis
    config:
      url: "{url}"
      namespace: {namespace}
      connect_timeout: {connect}
      call_timeout: {call}
  jobs:
    port: job_queue
    adapter: redis
    config:
      url: "{url}"
      namespace: {namespace}
      connect_timeout: {connect}
      call_timeout: {call}
"""


@pytest.mark.parametrize("fault", ["stall", "cut"])
def test_health_reports_unhealthy_within_the_deadline_instead_of_hanging(
    fault: str,
    redis_url: str,
    proxy: BackgroundFaultProxy,
    namespaces: Callable[[], str],
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        HEALTH_MANIFEST.format(
            url=proxy.url(redis_url), namespace=namespaces(), connect=CONNECT, call=CALL
        )
    )
    getattr(proxy, fault)()
    started = time.monotonic()
    done = run_cli("health", str(manifest), timeout=60)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.count("UNHEALTHY") == 2, output
    assert "Traceback" not in output
    # the interpreter's start and imports come on top of the deadline
    assert elapsed < CONNECT + CALL + 20, f"health took {elapsed:.1f} s"
