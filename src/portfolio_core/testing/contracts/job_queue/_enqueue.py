"""Enqueueing: validation, scheduling, idempotency keys."""

from __future__ import annotations

from typing import Any

import pytest

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.job_queue import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    JobCounts,
    JobQueue,
    JobState,
    NewJob,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.job_queue._common import (
    BAD_JOBS,
    BAD_PAYLOADS,
    Q,
    reserve_all,
)
from portfolio_core.testing.suite import ContractSuite


class EnqueueClauses(ContractSuite[JobQueue]):
    """Enqueueing: validation, scheduling, idempotency keys."""

    @clause("job_queue.enqueue.stored", "get returns the job as enqueued, available, unattempted")
    async def test_enqueue_then_get(self, adapter: JobQueue) -> None:
        payload = {"to": "ada@example.org", "n": [1, 2.5, None, True], "s": "é"}
        job_id = await adapter.enqueue(
            NewJob("send", payload, queue=Q, priority=3, max_attempts=5, unique_key="u1")
        )
        assert isinstance(job_id, str), f"enqueue returned {job_id!r}"
        assert job_id, "enqueue returned an empty id"
        job = await adapter.get(job_id)
        assert (job.id, job.task, job.payload, job.queue) == (job_id, "send", payload, Q)
        assert (job.priority, job.max_attempts, job.attempts) == (3, 5, 0)
        assert job.state is JobState.AVAILABLE, f"a job due now is {job.state}"
        assert job.unique_key == "u1"
        assert job.last_error is None
        other = await adapter.enqueue(NewJob("send", None, queue=Q))
        assert other != job_id, "two jobs got the same id"
        assert (await adapter.get(other)).payload is None, "a None payload must round-trip"

    @clause("job_queue.enqueue.snapshot", "changing a payload after enqueue changes nothing stored")
    async def test_payload_is_copied(self, adapter: JobQueue) -> None:
        payload: dict[str, Any] = {"items": [1, 2]}
        job_id = await adapter.enqueue(NewJob("t", payload, queue=Q))
        payload["items"].append(3)
        got = await adapter.get(job_id)
        got.payload["items"].append(4)
        assert (await adapter.get(job_id)).payload == {"items": [1, 2]}
        (held,) = await adapter.reserve(Q)
        assert held.job.payload == {"items": [1, 2]}

    @clause(
        "job_queue.enqueue.invalid",
        "a payload that is not JSON raises InvalidInputError naming it; nothing is enqueued",
    )
    @pytest.mark.parametrize("bad", BAD_PAYLOADS)
    async def test_invalid_payload(self, adapter: JobQueue, bad: Any) -> None:
        with pytest.raises(InvalidInputError) as info:
            await adapter.enqueue(NewJob("t", bad, queue=Q))
        assert info.value.field == "payload", f"the error names {info.value.field!r}"
        assert await adapter.counts(Q) == JobCounts(), "a refused job was stored"
        assert await adapter.reserve(Q) == []

    @clause(
        "job_queue.enqueue.invalid",
        "a payload that is not JSON raises InvalidInputError naming it; nothing is enqueued",
    )
    @pytest.mark.parametrize(("bad", "field"), BAD_JOBS)
    async def test_invalid_fields(self, adapter: JobQueue, bad: NewJob, field: str) -> None:
        with pytest.raises(InvalidInputError) as info:
            await adapter.enqueue(bad)
        assert info.value.field == field, f"a bad {field} was reported as {info.value.field!r}"
        queue = getattr(bad, "queue", Q)
        if not (type(queue) is str and queue and len(queue) <= 128 and _unicode(queue)):
            queue = Q
        if "\x00" in queue:
            queue = Q
        assert await adapter.counts(queue) == JobCounts(), "a refused job was stored"

    @clause(
        "job_queue.enqueue.priority_range",
        "every priority in [MIN_PRIORITY, MAX_PRIORITY] is accepted, the bounds included",
    )
    async def test_priority_bounds_accepted(self, adapter: JobQueue) -> None:
        low = await adapter.enqueue(NewJob("t", "low", queue=Q, priority=MIN_PRIORITY))
        high = await adapter.enqueue(NewJob("t", "high", queue=Q, priority=MAX_PRIORITY))
        assert [r.job.id for r in await reserve_all(adapter)] == [high, low], (
            "the highest priority must be reserved first"
        )

    @clause("job_queue.enqueue.many", "enqueue_many stores every job, or none when one is bad")
    async def test_enqueue_many_all_or_nothing(self, adapter: JobQueue) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.enqueue_many([NewJob("a", 1, queue=Q), NewJob("b", {1, 2}, queue=Q)])
        assert await adapter.counts(Q) == JobCounts(), "part of a refused batch was stored"
        ids = await adapter.enqueue_many([NewJob("a", i, queue=Q) for i in range(5)])
        assert len(set(ids)) == 5
        got = await reserve_all(adapter)
        assert [r.job.payload for r in got] == list(range(5))
        assert [r.id for r in got] == ids

    @clause(
        "job_queue.unique.merge",
        "a unique key held by a live or completed job returns the holder's id; dead or "
        "cancelled jobs free it",
    )
    async def test_unique_key_merges(self, adapter: JobQueue) -> None:
        first = await adapter.enqueue(NewJob("t", 1, queue=Q, unique_key="k"))
        assert await adapter.enqueue(NewJob("t", 2, queue=Q, unique_key="k")) == first
        assert (await adapter.counts(Q)).available == 1, "a duplicate key was enqueued"
        (held,) = await adapter.reserve(Q)
        assert await adapter.enqueue(NewJob("t", 3, queue=Q, unique_key="k")) == first
        await adapter.complete(held)
        assert await adapter.enqueue(NewJob("t", 4, queue=Q, unique_key="k")) == first, (
            "a completed job keeps its unique key"
        )
        other_queue = await adapter.enqueue(NewJob("t", 5, queue="kit2", unique_key="k"))
        assert other_queue != first, "unique keys are per queue"
        second = await adapter.enqueue(NewJob("t", 6, queue=Q, unique_key="c"))
        assert await adapter.cancel(second)
        third = await adapter.enqueue(NewJob("t", 7, queue=Q, unique_key="c"))
        assert third != second, "a cancelled job must free its unique key"
        doomed = await adapter.enqueue(
            NewJob("t", 10, queue="kit-dead", unique_key="d", max_attempts=1)
        )
        (held,) = await adapter.reserve("kit-dead")
        await adapter.fail(held, "boom")
        assert (await adapter.get(doomed)).state is JobState.DEAD
        reborn = await adapter.enqueue(NewJob("t", 11, queue="kit-dead", unique_key="d"))
        assert reborn != doomed, "a dead job must free its unique key"
        ids = await adapter.enqueue_many(
            [NewJob("t", 8, queue=Q, unique_key="m"), NewJob("t", 9, queue=Q, unique_key="m")]
        )
        assert ids[0] == ids[1], "one batch with a key twice stores it once"


def _unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
