"""Leases: expiry, extension, stale tokens."""

from __future__ import annotations

import pytest

from portfolio_core.ports.errors import ConflictError
from portfolio_core.ports.job_queue import (
    JobQueue,
    JobState,
    NewJob,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.contracts.job_queue._common import (
    Q,
)
from portfolio_core.testing.suite import ContractSuite


class LeaseClauses(ContractSuite[JobQueue]):
    """Leases: expiry, extension, stale tokens."""

    @clause(
        "job_queue.lease.expiry",
        "a job whose lease ran out is handed out again; the old token is then stale",
    )
    async def test_lease_expiry(self, adapter: JobQueue, clock: FakeClock) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q, max_attempts=3))
        (held,) = await adapter.reserve(Q, lease=10)
        assert held.lease_until == pytest.approx(clock() + 10)
        clock.advance(9.9)
        assert await adapter.reserve(Q) == [], "a leased job was handed out before expiry"
        clock.advance(0.1)
        (again,) = await adapter.reserve(Q, lease=10)
        assert again.id == job_id
        assert again.job.attempts == 2
        assert again.token != held.token
        for stale in (adapter.complete(held), adapter.release(held), adapter.extend(held, 5)):
            with pytest.raises(ConflictError):
                await stale
        with pytest.raises(ConflictError):
            await adapter.fail(held, "late")
        await adapter.complete(again)
        assert (await adapter.get(job_id)).state is JobState.COMPLETED

    @clause(
        "job_queue.lease.expiry",
        "a job whose lease ran out is handed out again; the old token is then stale",
    )
    async def test_lease_expiry_spends_attempts(self, adapter: JobQueue, clock: FakeClock) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q, max_attempts=1))
        await adapter.reserve(Q, lease=1)
        clock.advance(1)
        assert await adapter.reserve(Q) == []
        job = await adapter.get(job_id)
        assert job.state is JobState.DEAD, f"a job whose last lease expired is {job.state}"
        assert job.last_error, "a job dead of an expired lease must say so in last_error"

    @clause("job_queue.lease.extend", "extend moves the lease's end to lease seconds from now")
    async def test_extend(self, adapter: JobQueue, clock: FakeClock) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q))
        (held,) = await adapter.reserve(Q, lease=5)
        clock.advance(4)
        extended = await adapter.extend(held, 5)
        assert extended.token == held.token
        assert extended.lease_until == pytest.approx(clock() + 5)
        clock.advance(4)
        assert await adapter.reserve(Q) == [], "an extended lease was taken back early"
        await adapter.complete(extended)
        assert (await adapter.get(job_id)).state is JobState.COMPLETED
