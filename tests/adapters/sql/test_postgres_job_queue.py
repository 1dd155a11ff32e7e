"""PostgresJobQueue against a real server: the JobQueue contract suite, wake-ups across
instances and a broken connection."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from portfolio_core.adapters.sql.postgres_job_queue import PostgresJobQueue
from portfolio_core.ports import NewJob
from portfolio_core.testing.contracts.job_queue import JobQueueContract


@pytest.fixture
def tables(postgres_url: str, unique_name: str) -> Iterator[Callable[[], str]]:
    """Fresh table names for this test; each is dropped afterwards."""
    made: list[str] = []
    numbers = itertools.count()

    def new() -> str:
        made.append(f"{unique_name}_jobs{next(numbers)}")
        return made[-1]

    yield new
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in made:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


class TestPostgresJobQueueContract(JobQueueContract):
    @pytest.fixture
    def make_adapter(self, postgres_url: str, tables: Callable[[], str]) -> Callable[..., Any]:
        def make(*, clock: Callable[[], float]) -> PostgresJobQueue:
            return PostgresJobQueue(postgres_url, table=tables(), clock=clock, poll_interval=0.5)

        return make


async def test_enqueue_in_one_instance_wakes_a_reserve_in_another(
    postgres_url: str, tables: Callable[[], str]
) -> None:
    table = tables()
    producer = PostgresJobQueue(postgres_url, table=table, poll_interval=30)
    consumer = PostgresJobQueue(postgres_url, table=table, poll_interval=30)
    try:
        await producer.start()
        await consumer.start()
        waiting = asyncio.ensure_future(consumer.reserve("q", wait=20))
        await asyncio.sleep(0.2)
        job_id = await producer.enqueue(NewJob("t", queue="q"))
        got = await asyncio.wait_for(waiting, 5)  # far below the 30 s poll: NOTIFY woke it
        assert [r.id for r in got] == [job_id]
    finally:
        await producer.aclose()
        await consumer.aclose()


async def test_a_lost_server_is_unavailable_then_reconnected(
    postgres_url: str, tables: Callable[[], str]
) -> None:
    from portfolio_core.ports import UnavailableError
    from portfolio_core.testing.faults import FaultProxy

    proxy = await FaultProxy(postgres_url).start()
    queue = PostgresJobQueue(proxy.url(postgres_url), table=tables(), pool_size=2, poll_interval=30)
    try:
        await queue.enqueue(NewJob("t", 1, queue="q"))
        await proxy.cut()
        with pytest.raises(UnavailableError):
            await queue.enqueue(NewJob("t", 2, queue="q"))
        with pytest.raises(UnavailableError):
            await queue.counts("q")
        await proxy.restore()
        await queue.enqueue(NewJob("t", 3, queue="q"))  # a fresh connection
        assert (await queue.counts("q")).available == 2
        got = await queue.reserve("q", limit=5)
        assert [r.job.payload for r in got] == [1, 3], "the failed enqueue stored nothing"
        waiting = asyncio.ensure_future(queue.reserve("q", wait=20))
        await asyncio.sleep(0.1)
        await queue.enqueue(NewJob("t", 4, queue="q"))
        # woken by NOTIFY, or by the listener reconnecting (it wakes every waiter then, in
        # case a notification was missed), long before the 30 s poll
        woken = await asyncio.wait_for(waiting, 5)
        assert [r.job.payload for r in woken] == [4]
    finally:
        await queue.aclose()
        await proxy.aclose()
