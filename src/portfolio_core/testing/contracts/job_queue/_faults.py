"""Backend faults become the port's documented errors, and change nothing."""

from __future__ import annotations

from typing import Any

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.job_queue import (
    InspectableJobQueue,
    JobQueue,
    JobQueueCapability,
    JobState,
    NewJob,
)
from portfolio_core.testing._unavailable import expect_all_unavailable
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.job_queue._common import Q
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.suite import ContractSuite


class FaultClauses(ContractSuite[JobQueue]):
    """Backend faults become the port's documented errors, and change nothing."""

    @clause(
        "job_queue.faults.unavailable",
        "with the backend unreachable every operation raises UnavailableError and changes "
        "nothing; the queue serves again, reservations intact, once the backend is back",
    )
    async def test_backend_unreachable(self, adapter: JobQueue, faults: FaultInjector) -> None:
        first = await adapter.enqueue(NewJob("t", {"n": 1}, queue=Q, priority=1))
        second = await adapter.enqueue(NewJob("t", {"n": 2}, queue=Q))
        (held,) = await adapter.reserve(Q, lease=60)
        assert held.job.id == first, "the higher priority job was not reserved first"
        before = await adapter.counts(Q)
        calls: list[tuple[str, Any]] = [
            ("enqueue", lambda: adapter.enqueue(NewJob("t", {"n": 3}, queue=Q))),
            ("enqueue_many", lambda: adapter.enqueue_many([NewJob("t", {"n": 4}, queue=Q)])),
            ("reserve", lambda: adapter.reserve(Q)),
            ("complete", lambda: adapter.complete(held)),
            ("fail", lambda: adapter.fail(held, "boom", retry_in=0)),
            ("extend", lambda: adapter.extend(held, 120)),
            ("release", lambda: adapter.release(held)),
            ("get", lambda: adapter.get(first)),
            ("list_jobs", lambda: adapter.list_jobs(Q, JobState.AVAILABLE)),
            ("retry", lambda: adapter.retry(second)),
            ("cancel", lambda: adapter.cancel(second)),
            ("counts", lambda: adapter.counts(Q)),
        ]
        if supports(adapter, JobQueueCapability.INSPECT) and isinstance(
            adapter, InspectableJobQueue
        ):
            calls.append(("queues", adapter.queues))
        faults.arm()
        await expect_all_unavailable(calls)
        faults.clear()
        assert faults.calls, "the adapter accepts faults= but never reports reaching its backend"
        assert await adapter.counts(Q) == before, "a call that failed unreachable changed the queue"
        job = await adapter.get(first)
        assert (job.state, job.attempts) == (JobState.RUNNING, 1), (
            f"a call that failed unreachable changed the reserved job: {job}"
        )
        await adapter.complete(held)
        (following,) = await adapter.reserve(Q)
        assert following.job.id == second, "the queue did not serve again once the backend was back"
