"""Managing: counts, inspection, cancellation, purging."""

from __future__ import annotations

import pytest

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import ConflictError, NotFoundError
from portfolio_core.ports.job_queue import (
    InspectableJobQueue,
    JobCounts,
    JobQueue,
    JobQueueCapability,
    JobState,
    NewJob,
)
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.contracts.job_queue._common import (
    Q,
    reserve_all,
)
from portfolio_core.testing.suite import ContractSuite


class ManageClauses(ContractSuite[JobQueue]):
    """Managing: counts, inspection, cancellation, purging."""

    @clause(
        "job_queue.manage.retry",
        "retry revives a dead or cancelled job with attempts reset, and runs a scheduled one now",
    )
    async def test_retry(self, adapter: JobQueue, clock: FakeClock) -> None:
        dead = await adapter.enqueue(NewJob("t", 1, queue=Q, max_attempts=1))
        (held,) = await adapter.reserve(Q)
        await adapter.fail(held, "boom")
        revived = await adapter.retry(dead)
        assert (revived.state, revived.attempts, revived.last_error) == (
            JobState.AVAILABLE,
            0,
            "boom",
        )
        later = await adapter.enqueue(NewJob("t", 2, queue=Q, delay=100))
        assert (await adapter.retry(later)).state is JobState.AVAILABLE
        assert [r.id for r in await reserve_all(adapter)] == [dead, later]
        with pytest.raises(ConflictError):
            await adapter.retry(dead)  # running now
        with pytest.raises(NotFoundError):
            await adapter.retry("999999999")

    @clause(
        "job_queue.manage.retry",
        "retry revives a dead or cancelled job with attempts reset, and runs a scheduled one now",
    )
    async def test_retry_refused_when_key_taken(self, adapter: JobQueue) -> None:
        first = await adapter.enqueue(NewJob("t", 1, queue=Q, unique_key="k"))
        assert await adapter.cancel(first)
        second = await adapter.enqueue(NewJob("t", 2, queue=Q, unique_key="k"))
        with pytest.raises(ConflictError):
            await adapter.retry(first)
        assert (await adapter.get(first)).state is JobState.CANCELLED
        assert (await adapter.get(second)).state is JobState.AVAILABLE

    @clause(
        "job_queue.manage.cancel",
        "cancel stops a job that has not run; running and completed jobs cannot be cancelled",
    )
    async def test_cancel(self, adapter: JobQueue) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q, delay=30))
        assert await adapter.cancel(job_id) is True
        assert await adapter.cancel(job_id) is False
        assert (await adapter.get(job_id)).state is JobState.CANCELLED
        assert await adapter.list_jobs(Q, JobState.CANCELLED) != []
        running = await adapter.enqueue(NewJob("t", 2, queue=Q))
        (held,) = await adapter.reserve(Q)
        with pytest.raises(ConflictError):
            await adapter.cancel(running)
        await adapter.complete(held)
        with pytest.raises(ConflictError):
            await adapter.cancel(running)
        with pytest.raises(NotFoundError):
            await adapter.cancel("999999999")
        assert await adapter.reserve(Q) == []

    @clause("job_queue.get.not_found", "get of an unknown id raises NotFoundError")
    async def test_get_unknown(self, adapter: JobQueue) -> None:
        for unknown in ("999999999", "not-an-id"):
            with pytest.raises(NotFoundError):
                await adapter.get(unknown)

    @clause("job_queue.counts", "counts and list_jobs report each job under its current state")
    async def test_counts_and_lists(self, adapter: JobQueue, clock: FakeClock) -> None:
        ids = await adapter.enqueue_many([NewJob("t", i, queue=Q) for i in range(4)])
        scheduled = await adapter.enqueue(NewJob("t", 9, queue=Q, delay=50))
        a, b = await adapter.reserve(Q, limit=2)
        await adapter.complete(a)
        expected = JobCounts(scheduled=1, available=2, running=1, completed=1)
        assert await adapter.counts(Q) == expected
        listed = await adapter.list_jobs(Q, JobState.AVAILABLE)
        assert [j.id for j in listed] == ids[2:]
        assert [j.id for j in await adapter.list_jobs(Q, JobState.AVAILABLE, limit=1)] == ids[2:3]
        assert [j.id for j in await adapter.list_jobs(Q, JobState.RUNNING)] == [b.id]
        assert [j.id for j in await adapter.list_jobs(Q, JobState.SCHEDULED)] == [scheduled]
        clock.advance(50)
        assert (await adapter.counts(Q)).available == 3
        assert await adapter.counts("empty") == JobCounts()

    @clause(
        "job_queue.inspect",
        "queues() lists, sorted, every queue holding a job in any state, and nothing else",
    )
    @requires(JobQueueCapability.INSPECT)
    async def test_queues(self, adapter: JobQueue) -> None:
        inspectable: InspectableJobQueue = adapter  # type: ignore[assignment]
        assert await inspectable.queues() == [], "a new adapter lists queues"
        await adapter.enqueue(NewJob("t", queue="kit-b"))  # available
        await adapter.enqueue(NewJob("t", queue="kit-a", delay=30))  # scheduled
        await adapter.enqueue(NewJob("t", queue="kit-c"))
        (held,) = await adapter.reserve("kit-c")
        await adapter.complete(held)  # completed
        await adapter.enqueue(NewJob("t", queue="kit-d", max_attempts=1))
        (held,) = await adapter.reserve("kit-d")
        await adapter.fail(held, "boom")  # dead
        await adapter.enqueue(NewJob("t", queue="kit-e"))
        await adapter.reserve("kit-e")  # running
        assert await adapter.cancel(await adapter.enqueue(NewJob("t", queue="kit-f")))
        await adapter.counts("kit-g")  # asking about a queue stores nothing
        await adapter.reserve("kit-g")
        await adapter.list_jobs("kit-g", JobState.DEAD)
        listed = await inspectable.queues()
        assert listed == [f"kit-{c}" for c in "abcdef"], f"queues() listed {listed}"

    @clause(
        "job_queue.snapshots",
        "every returned list and job is the caller's own: changing it changes nothing in the "
        "queue or in later results",
    )
    async def test_returned_collections_are_copies(self, adapter: JobQueue) -> None:
        ids = await adapter.enqueue_many(
            [NewJob("t", {"n": [1]}, queue=Q), NewJob("t", {"n": [2]}, queue=Q)]
        )
        expected = list(ids)
        ids.clear()
        listed = await adapter.list_jobs(Q, JobState.AVAILABLE)
        listed[0].payload["n"].append(9)
        listed.clear()
        again = await adapter.list_jobs(Q, JobState.AVAILABLE)
        assert [(j.id, j.payload) for j in again] == [
            (expected[0], {"n": [1]}),
            (expected[1], {"n": [2]}),
        ], "changing a listed job or the list changed what the queue lists"
        if supports(adapter, JobQueueCapability.INSPECT) and isinstance(
            adapter, InspectableJobQueue
        ):
            names = await adapter.queues()
            names.append("not-a-queue")
            assert await adapter.queues() == [Q], "changing the list of queues changed the queue"
        taken = await adapter.reserve(Q, limit=2)
        taken[0].job.payload["n"].append(9)
        taken.clear()
        running = await adapter.list_jobs(Q, JobState.RUNNING)
        assert [j.payload for j in running] == [{"n": [1]}, {"n": [2]}], (
            "changing a reserved job's payload changed the stored job"
        )
