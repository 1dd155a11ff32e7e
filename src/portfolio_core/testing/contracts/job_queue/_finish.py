"""Finishing: complete, fail, retries and backoff."""

from __future__ import annotations

import pytest

from portfolio_core.ports.errors import ConflictError
from portfolio_core.ports.job_queue import (
    JobQueue,
    JobState,
    NewJob,
    default_backoff,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.contracts.job_queue._common import (
    Q,
)
from portfolio_core.testing.suite import ContractSuite


class FinishClauses(ContractSuite[JobQueue]):
    """Finishing: complete, fail, retries and backoff."""

    @clause("job_queue.complete.once", "a completed job is never handed out again")
    async def test_complete(self, adapter: JobQueue, clock: FakeClock) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q))
        (held,) = await adapter.reserve(Q, lease=5)
        await adapter.complete(held)
        assert (await adapter.get(job_id)).state is JobState.COMPLETED
        clock.advance(60)
        assert await adapter.reserve(Q) == [], "a completed job was handed out again"
        with pytest.raises(ConflictError):
            await adapter.complete(held)
        assert (await adapter.counts(Q)).completed == 1

    @clause(
        "job_queue.fail.retry",
        "fail keeps the error and makes the job available again after retry_in (or backoff)",
    )
    async def test_fail_retries(self, adapter: JobQueue, clock: FakeClock) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q, max_attempts=3))
        (held,) = await adapter.reserve(Q)
        after = await adapter.fail(held, "boom", retry_in=7)
        assert after.state is JobState.SCHEDULED
        assert after.last_error == "boom"
        assert after.attempts == 1
        clock.advance(6.9)
        assert await adapter.reserve(Q) == []
        clock.advance(0.1)
        (again,) = await adapter.reserve(Q)
        assert again.id == job_id
        assert again.job.attempts == 2
        after = await adapter.fail(again, "bang")
        assert after.run_at == pytest.approx(clock() + default_backoff(2))
        clock.advance(default_backoff(2))
        (third,) = await adapter.reserve(Q)
        assert third.job.last_error == "bang", "last_error must be kept until the next failure"
        await adapter.complete(third)

    @clause(
        "job_queue.fail.dead_letter",
        "after max_attempts failures the job is dead with its last error, and listed as such",
    )
    async def test_dead_letter(self, adapter: JobQueue) -> None:
        job_id = await adapter.enqueue(NewJob("poison", {"x": 1}, queue=Q, max_attempts=2))
        for n in range(2):
            (held,) = await adapter.reserve(Q)
            after = await adapter.fail(held, f"ValueError: bad {n}", retry_in=0)
        assert after.state is JobState.DEAD
        dead = await adapter.list_jobs(Q, JobState.DEAD)
        assert [(j.id, j.last_error, j.attempts) for j in dead] == [
            (job_id, "ValueError: bad 1", 2)
        ]
        assert await adapter.reserve(Q) == [], "a dead job was handed out"
        assert (await adapter.counts(Q)).dead == 1

    @clause("job_queue.release", "release gives the job back available at once, attempt uncounted")
    async def test_release(self, adapter: JobQueue) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q, max_attempts=1))
        (held,) = await adapter.reserve(Q)
        await adapter.release(held)
        job = await adapter.get(job_id)
        assert (job.state, job.attempts) == (JobState.AVAILABLE, 0)
        with pytest.raises(ConflictError):
            await adapter.complete(held)
        (again,) = await adapter.reserve(Q)
        assert again.id == job_id
        assert again.job.attempts == 1
