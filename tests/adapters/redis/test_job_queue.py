"""RedisJobQueue against a real server: the JobQueue contract suite and the order key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from portfolio_core.adapters.redis.job_queue import RedisJobQueue, order_key
from portfolio_core.testing.contracts.job_queue import JobQueueContract


@pytest.fixture
def namespaces(redis_url: str, unique_name: str) -> Iterator[Callable[[], str]]:
    """Fresh key namespaces for this test; every key under them is deleted afterwards."""
    made: list[str] = []

    def new() -> str:
        made.append(f"pctest.{unique_name}.{len(made)}")
        return made[-1]

    yield new
    client = redis.Redis.from_url(redis_url)
    try:
        for namespace in made:
            keys = list(client.scan_iter(match=f"{namespace}:*", count=500))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


class TestRedisJobQueueContract(JobQueueContract):
    @pytest.fixture
    def make_adapter(self, redis_url: str, namespaces: Callable[[], str]) -> Callable[..., Any]:
        def make(*, clock: Callable[[], float]) -> RedisJobQueue:
            return RedisJobQueue(redis_url, namespace=namespaces(), clock=clock, poll_interval=0.01)

        return make


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite, finite)
def test_order_key_sorts_as_the_floats(a: float, b: float) -> None:
    assert (order_key(a) < order_key(b)) == (a < b)
    assert (order_key(a) == order_key(b)) == (a == b)


async def test_a_lost_server_is_unavailable_then_reconnected(
    redis_url: str, namespaces: Callable[[], str]
) -> None:
    from portfolio_core.ports import NewJob, UnavailableError
    from portfolio_core.testing.faults import FaultProxy

    proxy = await FaultProxy(redis_url).start()
    queue = RedisJobQueue(proxy.url(redis_url), namespace=namespaces())
    try:
        await queue.enqueue(NewJob("t", 1))
        await proxy.cut()
        with pytest.raises(UnavailableError):
            await queue.enqueue(NewJob("t", 2))
        await proxy.restore()
        await queue.enqueue(NewJob("t", 3))
        got = await queue.reserve("default", limit=5)
        assert [r.job.payload for r in got] == [1, 3]
    finally:
        await queue.aclose()
        await proxy.aclose()
