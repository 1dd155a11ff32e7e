"""Reserving: priority and order, waiting, wake-ups."""

from __future__ import annotations

import asyncio

from portfolio_core.ports.job_queue import (
    JobQueue,
    JobState,
    NewJob,
)
from portfolio_core.testing._background import in_background
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.concurrency import run_concurrently
from portfolio_core.testing.contracts.job_queue._common import (
    BOUND,
    Q,
    reserve_all,
)
from portfolio_core.testing.suite import ContractSuite


class ReserveClauses(ContractSuite[JobQueue]):
    """Reserving: priority and order, waiting, wake-ups."""

    @clause(
        "job_queue.reserve.order",
        "reserve hands out due jobs by priority (higher first), then run_at, then enqueue order",
    )
    async def test_reserve_order(self, adapter: JobQueue) -> None:
        ids = [
            await adapter.enqueue(NewJob("t", "low", queue=Q, priority=-1)),
            await adapter.enqueue(NewJob("t", "a", queue=Q)),
            await adapter.enqueue(NewJob("t", "high", queue=Q, priority=5)),
            await adapter.enqueue(NewJob("t", "b", queue=Q)),
            await adapter.enqueue(NewJob("t", "c", queue=Q)),
        ]
        first = await adapter.reserve(Q, limit=2)
        rest = await reserve_all(adapter)
        got = [r.job.payload for r in first + rest]
        assert got == ["high", "a", "b", "c", "low"], f"reserved in the order {got}"
        assert {r.id for r in first + rest} == set(ids)
        assert all(r.job.state is JobState.RUNNING and r.job.attempts == 1 for r in first)
        assert await adapter.reserve("elsewhere") == [], "queues must not share jobs"

    @clause(
        "job_queue.reserve.order",
        "reserve hands out due jobs by priority (higher first), then run_at, then enqueue order",
    )
    async def test_reserve_order_by_run_at(self, adapter: JobQueue, clock: FakeClock) -> None:
        now = clock()
        await adapter.enqueue(NewJob("t", "later", queue=Q, run_at=now - 1))
        await adapter.enqueue(NewJob("t", "earlier", queue=Q, run_at=now - 5))
        got = [r.job.payload for r in await reserve_all(adapter)]
        assert got == ["earlier", "later"], f"reserved in the order {got}"

    @clause("job_queue.reserve.scheduled", "a job is not handed out before its run_at")
    async def test_scheduled_jobs_wait(self, adapter: JobQueue, clock: FakeClock) -> None:
        delayed = await adapter.enqueue(NewJob("t", "d", queue=Q, delay=10))
        at = await adapter.enqueue(NewJob("t", "a", queue=Q, run_at=clock() + 20))
        assert (await adapter.get(delayed)).state is JobState.SCHEDULED
        assert (await adapter.counts(Q)).scheduled == 2
        assert await adapter.reserve(Q, limit=5) == []
        clock.advance(10)
        assert [r.id for r in await adapter.reserve(Q, limit=5)] == [delayed]
        clock.advance(9.5)
        assert await adapter.reserve(Q, limit=5) == []
        clock.advance(0.5)
        assert [r.id for r in await adapter.reserve(Q, limit=5)] == [at]

    @clause(
        "job_queue.reserve.wait",
        "a reserve waiting for work is woken by an enqueue; with none it returns [] after wait",
    )
    async def test_waiting_reserve_wakes(self, adapter: JobQueue) -> None:
        assert await adapter.reserve(Q, wait=0.05) == []
        async with in_background(adapter.reserve(Q, wait=BOUND)) as waiting:
            await asyncio.sleep(0.05)
            assert not waiting.done(), "reserve(wait=...) returned before any job was enqueued"
            job_id = await adapter.enqueue(NewJob("t", 1, queue=Q))
            got = await asyncio.wait_for(waiting, BOUND)
        assert [r.id for r in got] == [job_id]

    @clause(
        "job_queue.reserve.exclusive",
        "N consumers racing for M jobs: each job is handed out once and completed exactly once",
    )
    async def test_workers_race(self, adapter: JobQueue) -> None:
        jobs = 60
        ids = await adapter.enqueue_many([NewJob("t", i, queue=Q) for i in range(jobs)])
        seen: list[list[str]] = [[] for _ in range(8)]

        async def worker(i: int) -> None:
            while True:
                got = await adapter.reserve(Q, limit=1 + i % 3)
                if not got:
                    return
                for reservation in got:
                    seen[i].append(reservation.id)
                    await asyncio.sleep(0)
                    await adapter.complete(reservation)

        results = await run_concurrently(8, worker)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"workers failed: {errors!r}"
        handed = [job_id for ids_of in seen for job_id in ids_of]
        assert sorted(handed) == sorted(ids), (
            f"{len(handed)} hand-outs for {jobs} jobs ({len(handed) - len(set(handed))} duplicates)"
        )
        counts = await adapter.counts(Q)
        assert (counts.completed, counts.pending) == (jobs, 0), f"counts after: {counts}"
