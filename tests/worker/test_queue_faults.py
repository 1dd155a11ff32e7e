"""The worker against a queue that fails at each step: a failing reserve is retried, a
finish the queue refuses as a conflict counts the job as lost, any other store error leaves
it unfinished (its lease will hand it out again), and periodic jobs are enqueued."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
from portfolio_core.ports import (
    ConflictError,
    Job,
    NewJob,
    PortError,
    Reservation,
    UnavailableError,
)
from portfolio_core.testing import FakeClock
from portfolio_core.worker import Handlers, Periodic, Worker

BOUND = 30.0


class FaultyQueue(MemoryJobQueue):
    """A memory queue whose next ``reserve``/``complete``/``fail`` raise the queued errors."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(poll_interval=0.005, **kw)
        self.faults: dict[str, list[PortError]] = {"reserve": [], "complete": [], "fail": []}
        self.attempted: dict[str, asyncio.Event] = {m: asyncio.Event() for m in self.faults}

    def _fault(self, method: str) -> None:
        self.attempted[method].set()
        if self.faults[method]:
            raise self.faults[method].pop(0)

    async def reserve(self, queue: str, **kw: Any) -> list[Reservation]:
        self._fault("reserve")
        return await super().reserve(queue, **kw)

    async def complete(self, reservation: Reservation) -> None:
        self._fault("complete")
        await super().complete(reservation)

    async def fail(self, reservation: Reservation, error: str, **kw: Any) -> Job:
        self._fault("fail")
        return await super().fail(reservation, error, **kw)


def handlers(*, fail: bool = False) -> Handlers:
    out = Handlers()

    @out.task("work")
    async def work(payload: Any) -> None:
        if fail:
            raise ValueError("no")

    return out


def test_a_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Worker(MemoryJobQueue(), Handlers(), concurrency=0)


async def test_a_failing_reserve_is_retried() -> None:
    queue = FaultyQueue()
    queue.faults["reserve"] = [UnavailableError("down"), UnavailableError("still down")]
    await queue.enqueue(NewJob("work"))
    worker = Worker(queue, handlers(), idle_wait=0.01)
    task = asyncio.ensure_future(worker.run())
    async with asyncio.timeout(BOUND):
        await queue.attempted["complete"].wait()
    worker.stop()
    await asyncio.wait_for(task, BOUND)  # stopping lets the running job finish
    assert queue.faults["reserve"] == []
    assert worker.stats.completed == 1


@pytest.mark.parametrize(("method", "fail"), [("complete", False), ("fail", True)])
async def test_a_finish_refused_as_a_conflict_counts_the_job_as_lost(
    method: str, fail: bool
) -> None:
    queue = FaultyQueue()
    queue.faults[method] = [ConflictError("the lease moved on")]
    await queue.enqueue(NewJob("work", max_attempts=1))
    worker = Worker(queue, handlers(fail=fail), idle_wait=0.01)
    task = asyncio.ensure_future(worker.run())
    async with asyncio.timeout(BOUND):
        await queue.attempted[method].wait()
    worker.stop()
    await asyncio.wait_for(task, BOUND)
    assert (worker.stats.completed, worker.stats.failed, worker.stats.lost) == (0, 0, 1)


async def test_a_store_error_while_finishing_leaves_the_job_unfinished() -> None:
    queue = FaultyQueue()
    queue.faults["complete"] = [UnavailableError("down")]
    job_id = await queue.enqueue(NewJob("work"))
    worker = Worker(queue, handlers(), idle_wait=0.01, lease=60)
    task = asyncio.ensure_future(worker.run())
    async with asyncio.timeout(BOUND):
        await queue.attempted["complete"].wait()
    worker.stop()
    await asyncio.wait_for(task, BOUND)
    assert (worker.stats.completed, worker.stats.lost) == (0, 0)
    assert (await queue.get(job_id)).state.value == "running"  # its lease hands it out later


async def test_a_worker_with_periodic_jobs_enqueues_their_ticks() -> None:
    clock = FakeClock(1_700_000_000.0)
    queue = FaultyQueue(clock=clock)
    worker = Worker(
        queue,
        handlers(),
        idle_wait=0.01,
        clock=clock,
        periodic=[Periodic("work", "* * * * *")],
    )
    task = asyncio.ensure_future(worker.run())
    async with asyncio.timeout(BOUND):
        await queue.attempted["reserve"].wait()  # started: its schedule counts from now
        clock.advance(61)
        await queue.attempted["complete"].wait()
    worker.stop()
    await asyncio.wait_for(task, BOUND)
    assert (await queue.counts("default")).completed == 1
