"""Protection: breaker bridge, rate limit, bulkhead, timeout, retry, fallback, and order."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pybreaker
import pytest

from portfolio_core.boundary import (
    Breaker,
    BreakerStorageError,
    BulkheadFullError,
    CircuitOpenError,
    RateLimitStorageError,
    boundary_of,
    wrap,
)
from portfolio_core.boundary.ratelimit import RateLimiter
from portfolio_core.ports import (
    Cache,
    InvalidInputError,
    PortTimeoutError,
    RateLimitedError,
    UnavailableError,
    port_by_key,
    tenant_scope,
)

CACHE = port_by_key("cache")
STORE = port_by_key("cache_store")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedCache:
    """A Cache whose ``get`` sleeps ``delay`` and raises the queued errors first."""

    def __init__(self, delay: float = 0.0, errors: list[BaseException] | None = None) -> None:
        self.delay = delay
        self.errors = list(errors or [])
        self.calls = 0
        self.active = 0
        self.max_active = 0

    async def get(self, key: str) -> Any | None:
        self.calls += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.errors:
                raise self.errors.pop(0)
            return f"value:{key}"
        finally:
            self.active -= 1

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        return None

    async def delete(self, key: str) -> bool:
        return False

    async def clear(self) -> None:
        return None

    async def exists(self, key: str) -> bool:
        return False

    async def get_many(self, keys: Any) -> dict[str, Any]:
        return {}

    async def put_many(self, items: Any, ttl: float | None = None) -> None:
        return None


def protect(adapter: Any, protection: dict[str, Any], **kw: Any) -> Any:
    return wrap(
        adapter,
        port=CACHE,
        name=kw.pop("name", "c"),
        adapter_type="test",
        telemetry=None,
        protection=protection,
        **kw,
    )


# -- circuit breaker ---------------------------------------------------------------------


async def test_breaker_lets_concurrent_async_calls_run_concurrently() -> None:
    cache = ScriptedCache(delay=0.01)
    proxy = protect(cache, {"circuit_breaker": {"fail_max": 3}})
    start = time.perf_counter()
    results = await asyncio.gather(*(proxy.get(str(i)) for i in range(8)))
    elapsed = time.perf_counter() - start
    assert len(results) == 8
    assert cache.max_active == 8
    assert elapsed < 0.03, f"8 concurrent 10 ms calls took {elapsed * 1000:.1f} ms"


async def test_breaker_opens_after_fail_max_and_refuses_without_calling() -> None:
    cache = ScriptedCache(errors=[UnavailableError("down")] * 3)
    proxy = protect(cache, {"circuit_breaker": {"fail_max": 3, "reset_timeout": 30}})
    for _ in range(3):
        with pytest.raises(UnavailableError, match="down"):
            await proxy.get("k")
    with pytest.raises(CircuitOpenError) as info:
        await proxy.get("k")
    assert cache.calls == 3
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 30
    assert boundary_of(proxy).breaker.state == "open"  # type: ignore[union-attr]
    assert boundary_of(proxy).stats["get"].rejected == 1  # type: ignore[union-attr]


async def test_caller_errors_do_not_trip_the_breaker() -> None:
    cache = ScriptedCache(errors=[InvalidInputError("bad")] * 5)
    proxy = protect(cache, {"circuit_breaker": {"fail_max": 2}})
    for _ in range(5):
        with pytest.raises(InvalidInputError):
            await proxy.get("k")
    assert await proxy.get("k") == "value:k"


async def test_half_open_admits_exactly_one_probe_under_concurrency() -> None:
    clock = FakeClock()
    cache = ScriptedCache(errors=[UnavailableError("down")])
    proxy = protect(cache, {"circuit_breaker": {"fail_max": 1, "reset_timeout": 5}}, clock=clock)
    with pytest.raises(UnavailableError):
        await proxy.get("k")
    with pytest.raises(CircuitOpenError):
        await proxy.get("k")
    clock.now += 5.0
    cache.delay = 0.01
    cache.calls = 0
    outcomes = await asyncio.gather(*(proxy.get(str(i)) for i in range(10)), return_exceptions=True)
    admitted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, CircuitOpenError)]
    assert cache.calls == 1
    assert len(admitted) == 1
    assert len(refused) == 9
    assert boundary_of(proxy).breaker.state == "closed"  # type: ignore[union-attr]
    assert await proxy.get("k") == "value:k"


async def test_failed_probe_reopens_for_another_timeout() -> None:
    clock = FakeClock()
    cache = ScriptedCache(errors=[UnavailableError("down")] * 2)
    proxy = protect(cache, {"circuit_breaker": {"fail_max": 1, "reset_timeout": 5}}, clock=clock)
    with pytest.raises(UnavailableError):
        await proxy.get("k")
    clock.now += 5.0
    with pytest.raises(UnavailableError, match="down"):
        await proxy.get("k")  # the probe fails
    with pytest.raises(CircuitOpenError):
        await proxy.get("k")
    clock.now += 5.0
    assert await proxy.get("k") == "value:k"


async def test_cancellation_is_not_a_failure() -> None:
    cache = ScriptedCache(delay=1.0)
    proxy = protect(cache, {"circuit_breaker": {"fail_max": 1}})
    for _ in range(3):
        task = asyncio.create_task(proxy.get("k"))
        await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    breaker = boundary_of(proxy).breaker  # type: ignore[union-attr]
    assert breaker.state == "closed"
    cache.delay = 0
    assert await proxy.get("k") == "value:k"


async def test_cancelled_probe_frees_the_probe_slot() -> None:
    clock = FakeClock()
    cache = ScriptedCache(errors=[UnavailableError("down")])
    proxy = protect(cache, {"circuit_breaker": {"fail_max": 1, "reset_timeout": 1}}, clock=clock)
    with pytest.raises(UnavailableError):
        await proxy.get("k")
    clock.now += 1
    cache.delay = 1.0
    task = asyncio.create_task(proxy.get("k"))
    await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cache.delay = 0
    assert await proxy.get("k") == "value:k"


async def test_failing_listener_cannot_break_a_call() -> None:
    cache = ScriptedCache(errors=[UnavailableError("down")])
    proxy = protect(cache, {"circuit_breaker": {"fail_max": 1}})
    breaker = boundary_of(proxy).breaker  # type: ignore[union-attr]
    assert breaker is not None
    seen: list[tuple[str, str]] = []

    def bad(old: str, new: str) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(bad)
    breaker.add_listener(lambda old, new: seen.append((old, new)))
    with pytest.raises(UnavailableError, match="down"):
        await proxy.get("k")
    assert breaker.state == "open"
    assert ("closed", "open") in seen


def test_breaker_uses_the_monotonic_clock() -> None:
    clock = FakeClock()
    breaker = Breaker("b", fail_max=1, reset_timeout=10, clock=clock)
    breaker.admit()
    breaker.on_failure(UnavailableError("x"), False)
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    clock.now += 9.9
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    clock.now += 0.1
    assert breaker.admit() is True  # the probe


OPEN_UNTIL = re.compile(
    r"circuit breaker open; calls refused until \d\d:\d\d:\d\d UTC "
    r"\(in (\d+\.\d s|\d+ ms)\)"
)


def test_breaker_health_follows_its_state_without_changing_it() -> None:
    clock = FakeClock()
    breaker = Breaker("b", fail_max=1, reset_timeout=10, success_threshold=2, clock=clock)
    assert breaker.health() == (True, "")
    breaker.admit()
    breaker.on_failure(UnavailableError("x"), False)

    healthy, detail = breaker.health()
    match = OPEN_UNTIL.fullmatch(detail)
    assert not healthy
    assert match is not None, detail
    assert match.group(1) == "10.0 s"
    clock.now += 9.75
    match = OPEN_UNTIL.fullmatch(breaker.health()[1])
    assert match is not None
    assert match.group(1) == "250 ms"
    clock.now += 0.25
    assert breaker.health() == (
        False,
        "circuit breaker open; reset timeout passed, the next call is admitted as a probe",
    )
    assert breaker.state == "open"  # reading health admitted nothing

    assert breaker.admit() is True  # the probe half-opens it
    probing = (
        True,
        "circuit breaker half-open; probing one call at a time until 2 in a row succeed",
    )
    assert breaker.health() == probing
    breaker.on_success(True)
    assert breaker.health() == probing  # one of two successes
    assert breaker.admit() is True
    breaker.on_success(True)
    assert breaker.state == "closed"
    assert breaker.health() == (True, "")


class _FlakyStorage(pybreaker.CircuitMemoryStorage):  # type: ignore[misc]
    """In-memory breaker storage whose state cannot be read while ``down``."""

    down = False

    @property
    def state(self) -> str:
        if self.down:
            raise ConnectionError("storage down")
        return str(super().state)

    @state.setter
    def state(self, value: str) -> None:
        pybreaker.CircuitMemoryStorage.state.fset(self, value)


@pytest.mark.parametrize("fail_open", [True, False])
def test_breaker_health_when_its_storage_cannot_be_read(fail_open: bool) -> None:
    storage = _FlakyStorage("closed")
    breaker = Breaker("b", storage=storage, fail_open_on_storage_error=fail_open)
    storage.down = True
    if fail_open:  # calls go through: the breaker does not make the adapter unhealthy
        assert breaker.admit() is False
        assert breaker.health() == (True, "")
    else:
        with pytest.raises(BreakerStorageError):
            breaker.admit()
        assert breaker.health() == (
            False,
            "circuit breaker storage unavailable; calls refused (fail closed)",
        )


def test_sync_port_breaker() -> None:
    class Store:
        def __init__(self) -> None:
            self.fail = True

        def get(self, agent_id: str, tokens: Any) -> None:
            if self.fail:
                raise UnavailableError("down")

        def put(self, agent_id: str, blocks: Any) -> None: ...

        def evict(self, agent_id: str) -> bool:
            return False

        def delete(self, agent_id: str) -> bool:
            return False

        block_size = 16

        def pin(self, agent_id: str) -> None: ...

        def unpin(self, agent_id: str) -> bool:
            return False

        def stats(self) -> Any:
            return None

    proxy = wrap(
        Store(),
        port=STORE,
        name="s",
        adapter_type="t",
        telemetry=None,
        protection={"circuit_breaker": {"fail_max": 2}},
    )
    for _ in range(2):
        with pytest.raises(UnavailableError, match="down"):
            proxy.get("a", [1])
    with pytest.raises(CircuitOpenError):
        proxy.get("a", [1])


# -- rate limit ----------------------------------------------------------------------------


async def test_rate_limit_refuses_with_retry_after(unique_name: str) -> None:
    cache = ScriptedCache()
    proxy = protect(cache, {"rate_limit": {"limit": "3/minute", "key_prefix": unique_name}})
    for _ in range(3):
        await proxy.get("k")
    with pytest.raises(RateLimitedError) as info:
        await proxy.get("k")
    assert cache.calls == 3
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 60


@pytest.mark.parametrize("strategy", ["fixed_window", "moving_window", "sliding_window"])
async def test_every_strategy_limits(strategy: str, unique_name: str) -> None:
    proxy = protect(
        ScriptedCache(),
        {"rate_limit": {"limit": "5/minute", "strategy": strategy, "key_prefix": unique_name}},
    )
    admitted = 0
    for _ in range(12):
        try:
            await proxy.get("k")
            admitted += 1
        except RateLimitedError:
            pass
    assert admitted == 5


async def test_rate_limit_is_per_tenant(unique_name: str) -> None:
    proxy = protect(
        ScriptedCache(), {"rate_limit": {"limit": "2/minute", "key_prefix": unique_name}}
    )
    with tenant_scope("a"):
        await proxy.get("k")
        await proxy.get("k")
        with pytest.raises(RateLimitedError):
            await proxy.get("k")
    with tenant_scope("b"):
        await proxy.get("k")


async def test_lease_never_exceeds_the_limit(unique_name: str) -> None:
    proxy = protect(
        ScriptedCache(),
        {"rate_limit": {"limit": "10/minute", "lease": 4, "key_prefix": unique_name}},
    )
    admitted = 0
    for _ in range(25):
        try:
            await proxy.get("k")
            admitted += 1
        except RateLimitedError:
            pass
    assert 7 <= admitted <= 10


def test_sync_rate_limit(unique_name: str) -> None:
    limiter = RateLimiter("2/minute", key=unique_name)
    limiter.acquire()
    limiter.acquire()
    with pytest.raises(RateLimitedError):
        limiter.acquire()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_rate_limit_storage_down_fail_open_and_closed(unique_name: str) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    opened = protect(
        ScriptedCache(),
        {
            "rate_limit": {"limit": "1/minute", "storage": url, "key_prefix": unique_name},
            "on_storage_error": "open",
        },
    )
    assert await opened.get("k") == "value:k"
    assert await opened.get("k") == "value:k"
    closed = protect(
        ScriptedCache(),
        {
            "rate_limit": {"limit": "1/minute", "storage": url, "key_prefix": unique_name},
            "on_storage_error": "closed",
        },
    )
    with pytest.raises(RateLimitStorageError):
        await closed.get("k")


# -- bulkhead, timeout, retry, fallback ----------------------------------------------------


async def test_bulkhead_refuses_over_the_limit() -> None:
    cache = ScriptedCache(delay=0.02)
    proxy = protect(cache, {"bulkhead": {"max_concurrent": 2}})
    outcomes = await asyncio.gather(*(proxy.get(str(i)) for i in range(3)), return_exceptions=True)
    assert sum(isinstance(o, BulkheadFullError) for o in outcomes) == 1
    assert cache.max_active == 2


async def test_bulkhead_waits_within_its_bound() -> None:
    cache = ScriptedCache(delay=0.01)
    proxy = protect(cache, {"bulkhead": {"max_concurrent": 2, "max_wait": 1.0}})
    outcomes = await asyncio.gather(*(proxy.get(str(i)) for i in range(6)))
    assert len(outcomes) == 6
    assert cache.max_active == 2


async def test_a_half_open_probe_refused_by_the_bulkhead_frees_the_probe_slot() -> None:
    """The breaker admits a probe, then the (later) bulkhead refuses the call: the breaker
    must be told the probe never ran, or every later call would be refused as "probe in
    flight" although none is."""
    release = asyncio.Event()

    class Blocking(ScriptedCache):
        async def get(self, key: str) -> Any | None:
            await release.wait()
            return key

    clock = FakeClock()
    proxy = protect(
        Blocking(),
        {
            "circuit_breaker": {"fail_max": 1, "reset_timeout": 10},
            "bulkhead": {"max_concurrent": 1},
        },
        clock=clock,
    )
    holder = asyncio.create_task(proxy.get("holder"))  # takes the one bulkhead slot
    await asyncio.sleep(0)
    breaker = boundary_of(proxy).breaker  # type: ignore[union-attr]
    breaker.open()
    clock.now += 11  # half-open: the next call is the probe
    for _ in range(3):
        with pytest.raises(BulkheadFullError):
            await proxy.get("k")  # admitted as the probe, refused by the full bulkhead
    release.set()
    assert await holder == "holder"


async def test_unprotected_adapter_has_no_concurrency_limit() -> None:
    cache = ScriptedCache(delay=0.01)
    await asyncio.gather(*(cache.get(str(i)) for i in range(3)))
    assert cache.max_active == 3


async def test_timeout_raises_port_timeout() -> None:
    cache = ScriptedCache(delay=0.5)
    proxy = protect(cache, {"timeout": {"seconds": 0.02}})
    start = time.perf_counter()
    with pytest.raises(PortTimeoutError) as info:
        await proxy.get("k")
    assert time.perf_counter() - start < 0.3
    assert info.value.timeout == 0.02


def test_sync_timeout_raises_port_timeout() -> None:
    class Slow:
        def get(self, agent_id: str, tokens: Any) -> None:
            time.sleep(0.2)

        def put(self, agent_id: str, blocks: Any) -> None: ...

        def evict(self, agent_id: str) -> bool:
            return False

        def delete(self, agent_id: str) -> bool:
            return False

        block_size = 16

        def pin(self, agent_id: str) -> None: ...

        def unpin(self, agent_id: str) -> bool:
            return False

        def stats(self) -> Any:
            return None

    proxy = wrap(
        Slow(),
        port=STORE,
        name="s",
        adapter_type="t",
        telemetry=None,
        protection={"timeout": {"seconds": 0.02}},
    )
    with pytest.raises(PortTimeoutError):
        proxy.get("a", [1])


async def test_retry_retries_retryable_errors_only() -> None:
    cache = ScriptedCache(errors=[UnavailableError("1"), PortTimeoutError("2")])
    proxy = protect(cache, {"retry": {"attempts": 3, "backoff": 0.001}})
    assert await proxy.get("k") == "value:k"
    assert cache.calls == 3

    bad = ScriptedCache(errors=[InvalidInputError("no")])
    proxy = protect(bad, {"retry": {"attempts": 3, "backoff": 0.001}})
    with pytest.raises(InvalidInputError):
        await proxy.get("k")
    assert bad.calls == 1


async def test_retry_gives_up_after_attempts() -> None:
    cache = ScriptedCache(errors=[UnavailableError("x")] * 5)
    proxy = protect(cache, {"retry": {"attempts": 2, "backoff": 0.001}})
    with pytest.raises(UnavailableError):
        await proxy.get("k")
    assert cache.calls == 2


async def test_without_retry_the_first_error_surfaces() -> None:
    cache = ScriptedCache(errors=[UnavailableError("1")])
    proxy = protect(cache, {"timeout": {"seconds": 1}})
    with pytest.raises(UnavailableError):
        await proxy.get("k")


async def test_fallback_serves_from_another_adapter() -> None:
    primary = ScriptedCache(errors=[UnavailableError("down")])
    backup = ScriptedCache()
    proxy = protect(primary, {"fallback": {"adapter": "backup"}}, fallback=backup)
    assert isinstance(proxy, Cache)
    assert await proxy.get("k") == "value:k"
    assert backup.calls == 1
    primary2 = ScriptedCache(errors=[InvalidInputError("bad")])
    proxy = protect(primary2, {"fallback": {"adapter": "backup"}}, fallback=backup)
    with pytest.raises(InvalidInputError):
        await proxy.get("k")


async def test_fallback_covers_an_open_breaker() -> None:
    primary = ScriptedCache(errors=[UnavailableError("down")] * 10)
    backup = ScriptedCache()
    proxy = protect(
        primary,
        {"circuit_breaker": {"fail_max": 1}, "fallback": {"adapter": "b"}},
        fallback=backup,
    )
    await proxy.get("k")
    await proxy.get("k")
    assert primary.calls == 1  # the second call was refused by the breaker, served by backup
    assert backup.calls == 2


async def test_order_rate_limit_rejections_do_not_trip_the_breaker(unique_name: str) -> None:
    proxy = protect(
        ScriptedCache(),
        {
            "rate_limit": {"limit": "1/minute", "key_prefix": unique_name},
            "circuit_breaker": {"fail_max": 1},
        },
    )
    await proxy.get("k")
    for _ in range(3):
        with pytest.raises(RateLimitedError):
            await proxy.get("k")
    assert boundary_of(proxy).breaker.state == "closed"  # type: ignore[union-attr]


async def test_order_retry_runs_inside_the_timeout() -> None:
    cache = ScriptedCache(delay=0.03, errors=[UnavailableError("x")] * 10)
    proxy = protect(cache, {"timeout": {"seconds": 0.1}, "retry": {"attempts": 50, "backoff": 0}})
    with pytest.raises(PortTimeoutError):
        await proxy.get("k")
    assert cache.calls < 10


# -- async iterators, sync ports, sync methods of async ports ------------------------------


class ChunkLLM:
    def __init__(self, fail_before_first: bool = False) -> None:
        self.fail_before_first = fail_before_first
        self.opened = 0

    async def complete(self, messages: Any, opts: Any = None) -> Any:
        raise NotImplementedError

    async def stream(self, messages: Any, opts: Any = None) -> Any:
        from portfolio_core.ports import CompletionChunk

        self.opened += 1
        if self.fail_before_first:
            raise UnavailableError("stream down")
        for part in ("a", "b", "c"):
            yield CompletionChunk(part)


async def test_stream_is_admitted_once_by_the_rate_limit(unique_name: str) -> None:
    llm = ChunkLLM()
    proxy = wrap(
        llm,
        port=port_by_key("llm"),
        name="l",
        adapter_type="t",
        telemetry=None,
        protection={"rate_limit": {"limit": "1/minute", "key_prefix": unique_name}},
    )
    assert [c.text async for c in proxy.stream([])] == ["a", "b", "c"]
    with pytest.raises(RateLimitedError):
        async for _ in proxy.stream([]):
            pass
    assert llm.opened == 1


async def test_stream_closed_early_is_not_a_failure() -> None:
    proxy = wrap(
        ChunkLLM(),
        port=port_by_key("llm"),
        name="l",
        adapter_type="t",
        telemetry={},
        protection={"circuit_breaker": {"fail_max": 1}},
    )
    agen = proxy.stream([])
    assert (await agen.__anext__()).text == "a"
    await agen.aclose()
    assert boundary_of(proxy).breaker.state == "closed"  # type: ignore[union-attr]
    assert boundary_of(proxy).stats["stream"].errors == 0  # type: ignore[union-attr]


async def test_stream_falls_back_before_its_first_item() -> None:
    backup = ChunkLLM()
    proxy = wrap(
        ChunkLLM(fail_before_first=True),
        port=port_by_key("llm"),
        name="l",
        adapter_type="t",
        telemetry=None,
        protection={"fallback": {"adapter": "backup"}},
        fallback=backup,
    )
    assert [c.text async for c in proxy.stream([])] == ["a", "b", "c"]
    assert backup.opened == 1


class FlakyStore:
    def __init__(self, errors: list[BaseException] | None = None, delay: float = 0.0) -> None:
        self.errors = list(errors or [])
        self.delay = delay
        self.calls = 0

    def get(self, agent_id: str, tokens: Any) -> str:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.errors:
            raise self.errors.pop(0)
        return "hit"

    def put(self, agent_id: str, blocks: Any) -> None: ...

    def evict(self, agent_id: str) -> bool:
        return False

    def delete(self, agent_id: str) -> bool:
        return False

    block_size = 16

    def pin(self, agent_id: str) -> None: ...

    def unpin(self, agent_id: str) -> bool:
        return False

    def stats(self) -> Any:
        return None


def test_sync_retry_and_fallback() -> None:
    store = FlakyStore(errors=[UnavailableError("x")])
    proxy = wrap(
        store,
        port=STORE,
        name="s",
        adapter_type="t",
        telemetry=None,
        protection={"retry": {"attempts": 2, "backoff": 0.001}},
    )
    assert proxy.get("a", [1]) == "hit"
    assert store.calls == 2
    backup = FlakyStore()
    proxy = wrap(
        FlakyStore(errors=[UnavailableError("x")]),
        port=STORE,
        name="s",
        adapter_type="t",
        telemetry=None,
        protection={"fallback": {"adapter": "b"}},
        fallback=backup,
    )
    assert proxy.get("a", [1]) == "hit"
    assert backup.calls == 1


def test_sync_bulkhead_refuses_over_the_limit() -> None:
    import threading

    store = FlakyStore(delay=0.05)
    proxy = wrap(
        store,
        port=STORE,
        name="s",
        adapter_type="t",
        telemetry=None,
        protection={"bulkhead": {"max_concurrent": 1}},
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            proxy.get("a", [1])
        except BulkheadFullError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert len(errors) == 2


async def test_sync_methods_of_async_ports_are_not_protected(unique_name: str) -> None:
    from tests.ports.minimal_adapters import MinimalTenant

    proxy = wrap(
        MinimalTenant(),
        port=port_by_key("tenant"),
        name="t",
        adapter_type="t",
        telemetry={},
        protection={"rate_limit": {"limit": "1/minute", "key_prefix": unique_name}},
    )
    for _ in range(5):
        proxy.get_context()
    assert boundary_of(proxy).stats["get_context"].calls == 5  # type: ignore[union-attr]
