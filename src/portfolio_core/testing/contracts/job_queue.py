"""Contract suite of the JobQueue port (async; docs/ports/job_queue.md).

Clauses about time (scheduling, leases, backoff) need a factory accepting ``clock=``: the
kit then moves time with a `FakeClock` instead of sleeping. The wake-up clause uses
real time with a generous bound (an enqueue must end a waiting reserve long before it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from portfolio_core.ports.errors import ConflictError, InvalidInputError, NotFoundError
from portfolio_core.ports.job_queue import (
    InspectableJobQueue,
    Job,
    JobCounts,
    JobQueue,
    JobQueueCapability,
    JobState,
    NewJob,
    Reservation,
    default_backoff,
)
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.concurrency import run_concurrently
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = ["JobQueueContract", "JobQueueMachine", "JobModel"]

BOUND = 10.0
"""Seconds: an upper bound on waits that must end long before it."""
Q = "kit"

BAD_PAYLOADS = [
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param((1, 2), id="tuple"),
    pytest.param({1: "x"}, id="int-key"),
    pytest.param({"a": {1, 2}}, id="set"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(object(), id="object"),
    pytest.param(["a\x00b"], id="nul"),
]

BAD_JOBS = [
    pytest.param(NewJob(""), id="empty-task"),
    pytest.param(NewJob("t", queue=""), id="empty-queue"),
    pytest.param(NewJob("t", queue="q" * 129), id="long-queue"),
    pytest.param(NewJob("t", priority=40000), id="priority-range"),
    pytest.param(NewJob("t", priority=1.5), id="priority-float"),  # type: ignore[arg-type]
    pytest.param(NewJob("t", max_attempts=0), id="no-attempts"),
    pytest.param(NewJob("t", delay=-1), id="negative-delay"),
    pytest.param(NewJob("t", delay=1, run_at=5), id="delay-and-run-at"),
    pytest.param(NewJob("t", run_at=float("nan")), id="nan-run-at"),
    pytest.param(NewJob("t", unique_key=""), id="empty-unique-key"),
]


async def reserve_all(adapter: JobQueue, queue: str = Q, **kw: Any) -> list[Reservation]:
    """Everything ``reserve`` hands out now, in order (repeated until empty)."""
    out: list[Reservation] = []
    while True:
        got = await adapter.reserve(queue, limit=50, **kw)
        if not got:
            return out
        out.extend(got)


class JobQueueContract(ContractSuite[JobQueue]):
    """The promises of `JobQueue` (see docs/ports/job_queue.md)."""

    port_key = "job_queue"
    capability_names = frozenset(c.value for c in JobQueueCapability)

    async def put_probe(self, adapter: JobQueue) -> str:
        return await adapter.enqueue(NewJob("kit-probe", queue="kit-probe"))

    async def has_probe(self, adapter: JobQueue, probe: str) -> bool:
        return (await adapter.counts("kit-probe")).available > 0

    # -- enqueueing --------------------------------------------------------------------------------

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
    @pytest.mark.parametrize("bad", BAD_JOBS)
    async def test_invalid_fields(self, adapter: JobQueue, bad: NewJob) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.enqueue(bad)
        queue = bad.queue if bad.queue and len(bad.queue) <= 128 else Q
        assert await adapter.counts(queue) == JobCounts(), "a refused job was stored"

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
        ids = await adapter.enqueue_many(
            [NewJob("t", 8, queue=Q, unique_key="m"), NewJob("t", 9, queue=Q, unique_key="m")]
        )
        assert ids[0] == ids[1], "one batch with a key twice stores it once"

    # -- reserving ------------------------------------------------------------------------------

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
        waiting = asyncio.ensure_future(adapter.reserve(Q, wait=BOUND))
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

    # -- finishing ------------------------------------------------------------------------------

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

    # -- leases ---------------------------------------------------------------------------------

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

    # -- managing ------------------------------------------------------------------------------

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

    # -- the model --------------------------------------------------------------------------------

    @clause(
        "job_queue.model",
        "any sequence of enqueues, reserves, completions, failures, leases and time behaves "
        "like the model",
    )
    def test_state_machine(
        self, make_adapter: Factory, kit_settings: KitSettings, clock: FakeClock
    ) -> None:
        run_machine(JobQueueMachine, make_adapter, kit_settings)


# -- the pure model (written from the port docstring) ---------------------------------------------


@dataclass
class _ModelJob:
    id: str
    seq: int
    payload: Any
    priority: int
    max_attempts: int
    run_at: float
    unique_key: str | None
    state: str = "queued"
    attempts: int = 0
    last_error: str | None = None
    lease_until: float | None = None
    token: str | None = None

    def reported(self, now: float) -> JobState:
        if self.state == "queued":
            return JobState.SCHEDULED if self.run_at > now else JobState.AVAILABLE
        return JobState(self.state)


class JobModel:
    """One queue as the contract describes it, with lazy lease enforcement."""

    def __init__(self) -> None:
        self.jobs: dict[str, _ModelJob] = {}
        self.seq = 0

    def holder(self, key: str) -> _ModelJob | None:
        for job in self.jobs.values():
            if job.unique_key == key and job.state not in ("dead", "cancelled"):
                return job
        return None

    def enqueue(
        self,
        job_id: str,
        payload: Any,
        priority: int,
        max_attempts: int,
        run_at: float,
        key: str | None,
    ) -> None:
        self.seq += 1
        self.jobs[job_id] = _ModelJob(
            job_id, self.seq, payload, priority, max_attempts, run_at, key
        )

    def reserve(self, limit: int, now: float) -> list[_ModelJob]:
        for job in self.jobs.values():
            if job.state == "running" and (job.lease_until or 0.0) <= now:
                job.token = None
                job.lease_until = None
                if job.attempts >= job.max_attempts:
                    job.state = "dead"
                    job.last_error = "expired"
                else:
                    job.state = "queued"
        due = [j for j in self.jobs.values() if j.state == "queued" and j.run_at <= now]
        due.sort(key=lambda j: (-j.priority, j.run_at, j.seq))
        return due[:limit]

    def counts(self, now: float) -> JobCounts:
        tally = dict.fromkeys(JobState, 0)
        for job in self.jobs.values():
            tally[job.reported(now)] += 1
        return JobCounts(**{s.value: n for s, n in tally.items()})


PRIORITIES = st.sampled_from([-1, 0, 0, 2])
KEYS = st.sampled_from([None, None, "a", "b"])


class JobQueueMachine(AdapterMachine[JobQueue]):
    """Enqueues, reserves, completions, failures, releases, extensions, cancels, retries and
    the passing of time, compared step by step with `JobModel`."""

    def __init__(self, factory: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.model = JobModel()
        self.held: list[Reservation] = []  # every reservation handed out, stale ones included

    def _current(self, reservation: Reservation) -> bool:
        job = self.model.jobs[reservation.id]
        return job.state == "running" and job.token == reservation.token

    @rule(
        payload=st.integers(0, 99),
        priority=PRIORITIES,
        delay=st.sampled_from([None, 0.0, 3.0]),
        max_attempts=st.integers(1, 3),
        key=KEYS,
    )
    def enqueue(
        self, payload: int, priority: int, delay: float | None, max_attempts: int, key: str | None
    ) -> None:
        job = NewJob(
            "t",
            payload,
            queue=Q,
            priority=priority,
            delay=delay,
            max_attempts=max_attempts,
            unique_key=key,
        )
        job_id = self.run(self.adapter.enqueue(job))
        holder = self.model.holder(key) if key is not None else None
        if holder is not None:
            assert job_id == holder.id, f"key {key!r} is held by {holder.id}, enqueue gave {job_id}"
            return
        assert job_id not in self.model.jobs, f"enqueue reused the id {job_id}"
        now = self.clock()
        self.model.enqueue(job_id, payload, priority, max_attempts, now + (delay or 0.0), key)

    @rule(limit=st.integers(1, 3), lease=st.sampled_from([2.0, 5.0]))
    def reserve(self, limit: int, lease: float) -> None:
        now = self.clock()
        expected = self.model.reserve(limit, now)
        got = self.run(self.adapter.reserve(Q, limit=limit, lease=lease))
        assert [r.id for r in got] == [j.id for j in expected], (
            f"reserve({limit}) gave {[r.id for r in got]}, the model {[j.id for j in expected]}"
        )
        for reservation, job in zip(got, expected, strict=True):
            job.state = "running"
            job.attempts += 1
            job.lease_until = now + lease
            job.token = reservation.token
            assert reservation.job.attempts == job.attempts
            assert reservation.job.payload == job.payload
            self.held.append(reservation)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        reservation = data.draw(st.sampled_from(self.held))
        if self._current(reservation):
            self.run(self.adapter.complete(reservation))
            job = self.model.jobs[reservation.id]
            job.state, job.token, job.lease_until = "completed", None, None
        else:
            with pytest.raises(ConflictError):
                self.run(self.adapter.complete(reservation))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), retry_in=st.sampled_from([None, 0.0, 2.0]))
    def fail(self, data: st.DataObject, retry_in: float | None) -> None:
        reservation = data.draw(st.sampled_from(self.held))
        if not self._current(reservation):
            with pytest.raises(ConflictError):
                self.run(self.adapter.fail(reservation, "err", retry_in=retry_in))
            return
        after = self.run(self.adapter.fail(reservation, "err", retry_in=retry_in))
        job = self.model.jobs[reservation.id]
        job.token, job.lease_until, job.last_error = None, None, "err"
        now = self.clock()
        if job.attempts >= job.max_attempts:
            job.state = "dead"
        else:
            job.state = "queued"
            job.run_at = now + (default_backoff(job.attempts) if retry_in is None else retry_in)
        assert after.state is job.reported(now), f"fail left {after.state}"

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        reservation = data.draw(st.sampled_from(self.held))
        if not self._current(reservation):
            with pytest.raises(ConflictError):
                self.run(self.adapter.release(reservation))
            return
        self.run(self.adapter.release(reservation))
        job = self.model.jobs[reservation.id]
        job.state, job.token, job.lease_until = "queued", None, None
        job.attempts -= 1

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), lease=st.sampled_from([1.0, 4.0]))
    def extend(self, data: st.DataObject, lease: float) -> None:
        reservation = data.draw(st.sampled_from(self.held))
        if not self._current(reservation):
            with pytest.raises(ConflictError):
                self.run(self.adapter.extend(reservation, lease))
            return
        self.run(self.adapter.extend(reservation, lease))
        self.model.jobs[reservation.id].lease_until = self.clock() + lease

    @precondition(lambda self: bool(self.model.jobs))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job = self.model.jobs[data.draw(st.sampled_from(sorted(self.model.jobs)))]
        if job.state in ("running", "completed"):
            with pytest.raises(ConflictError):
                self.run(self.adapter.cancel(job.id))
            return
        assert self.run(self.adapter.cancel(job.id)) is (job.state != "cancelled")
        job.state = "cancelled"

    @precondition(lambda self: bool(self.model.jobs))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job = self.model.jobs[data.draw(st.sampled_from(sorted(self.model.jobs)))]
        now = self.clock()
        holder = self.model.holder(job.unique_key) if job.unique_key else None
        refused = job.state in ("running", "completed") or (
            job.state in ("dead", "cancelled") and holder is not None and holder is not job
        )
        if refused:
            with pytest.raises(ConflictError):
                self.run(self.adapter.retry(job.id))
            return
        self.run(self.adapter.retry(job.id))
        if job.state in ("dead", "cancelled"):
            job.state, job.attempts, job.run_at = "queued", 0, now
        elif job.run_at > now:
            job.run_at = now

    @precondition(lambda self: self.controls_time)
    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 5.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def counts_agree(self) -> None:
        got = self.run(self.adapter.counts(Q))
        assert got == self.model.counts(self.clock()), f"counts {got}"
        running = self.run(self.adapter.list_jobs(Q, JobState.RUNNING))
        expected = sorted(
            (j for j in self.model.jobs.values() if j.state == "running"), key=lambda j: j.seq
        )
        assert [(j.id, j.attempts) for j in running] == [(j.id, j.attempts) for j in expected], (
            f"running jobs (id, attempts): {[(j.id, j.attempts) for j in running]}"
        )

    @rule(data=st.data())
    def get_agrees(self, data: st.DataObject) -> None:
        if not self.model.jobs:
            return
        job = self.model.jobs[data.draw(st.sampled_from(sorted(self.model.jobs)))]
        got: Job = self.run(self.adapter.get(job.id))
        now = self.clock()
        assert (got.state, got.attempts, got.payload) == (
            job.reported(now),
            job.attempts,
            job.payload,
        ), f"get({job.id}) = {got}"
        if job.last_error not in (None, "expired"):
            assert got.last_error == job.last_error
