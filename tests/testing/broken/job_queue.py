"""Deliberately broken variants of the memory JobQueue, one bug each, with the clause it breaks.

tests/testing/test_job_queue_broken.py asserts the JobQueue contract suite fails on every one.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

from portfolio_core.adapters._shared.job_queue import check_reserve
from portfolio_core.adapters.memory.job_queue import MemoryJobQueue, _Queue, _Row
from portfolio_core.ports import (
    MAX_PRIORITY,
    ConflictError,
    InvalidInputError,
    Job,
    JobCounts,
    JobState,
    NewJob,
    Reservation,
)


class Broken(MemoryJobQueue):
    clause: ClassVar[str]


class ForgetsMaxAttempts(Broken):
    """Reports every job with the default max_attempts."""

    clause = "job_queue.enqueue.stored"

    def _snapshot(self, row: _Row, now: float) -> Job:
        return replace(super()._snapshot(row, now), max_attempts=3)


class SharesPayload(Broken):
    """Hands out the very payload object it keeps."""

    clause = "job_queue.enqueue.snapshot"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._objects: dict[int, Any] = {}

    def _snapshot(self, row: _Row, now: float) -> Job:
        job = super()._snapshot(row, now)
        kept = self._objects.setdefault(row.id, job.payload)
        return replace(job, payload=kept)


class StoresReprOfBadPayloads(Broken):
    """Stores the repr of a payload JSON cannot hold instead of refusing it."""

    clause = "job_queue.enqueue.invalid"

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        fixed = []
        for job in jobs:
            try:
                await MemoryJobQueue().enqueue(job)
            except InvalidInputError as exc:
                if exc.field != "payload":
                    raise
                job = replace(job, payload=repr(job.payload))
            fixed.append(job)
        return await super().enqueue_many(fixed)


class StoresPartOfABatch(Broken):
    """Stores the good jobs of a batch before failing on a bad one."""

    clause = "job_queue.enqueue.many"

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        ids: list[str] = []
        for job in jobs:
            ids += await super().enqueue_many([job])
        return ids


class IgnoresUniqueKeys(Broken):
    """Enqueues a duplicate unique key as a new job."""

    clause = "job_queue.unique.merge"

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        return await super().enqueue_many([replace(job, unique_key=None) for job in jobs])


class IgnoresPriority(Broken):
    """Hands out due jobs in run_at order whatever their priority."""

    clause = "job_queue.reserve.order"

    def _push(self, q: _Queue, row: _Row, now: float) -> None:
        if row.run_at <= now:
            heapq.heappush(q.ready, (0, row.run_at, row.id))
        else:
            heapq.heappush(q.scheduled, (row.run_at, row.id))

    def _take(self, name: str, limit: int, lease: float) -> list[Reservation]:
        q = self._queues.get(name)
        if q is not None:  # scheduled jobs falling due would go by priority again
            now = self._clock()
            while q.scheduled and q.scheduled[0][0] <= now:
                _run_at, job_id = heapq.heappop(q.scheduled)
                row = q.rows[job_id]
                heapq.heappush(q.ready, (0, row.run_at, row.id))
        return super()._take(name, limit, lease)


class RunsScheduledJobsEarly(Broken):
    """Ignores run_at and delay: every job is due at once."""

    clause = "job_queue.reserve.scheduled"

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        await MemoryJobQueue().enqueue_many(jobs)  # the same input checks
        return await super().enqueue_many([replace(j, run_at=None, delay=None) for j in jobs])


class NeverWaits(Broken):
    """Returns at once from reserve, whatever wait says."""

    clause = "job_queue.reserve.wait"

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        return await super().reserve(queue, limit=limit, lease=lease, wait=0.0)


class HandsOutRunningJobs(Broken):
    """Keeps a second ready entry per job and hands it out even while the job runs."""

    clause = "job_queue.reserve.exclusive"

    def _push(self, q: _Queue, row: _Row, now: float) -> None:
        super()._push(q, row, now)
        super()._push(q, row, now)

    def _take(self, name: str, limit: int, lease: float) -> list[Reservation]:
        q = self._queues.get(name)
        if q is not None:
            for row in q.running.values():  # the bug: running jobs look queued to the picker
                row.state = "queued"
        taken = super()._take(name, limit, lease)
        if q is not None:
            for row in q.running.values():
                row.state = "running"
        return taken


class RerunsCompletedJobs(Broken):
    """Marks a job completed but leaves its lease running, so it comes back on expiry."""

    clause = "job_queue.complete.once"

    async def complete(self, reservation: Reservation) -> None:
        row = self._held(reservation)
        row.state = "running"
        row.token = None  # the holder's token is stale, but the lease still runs out


class IgnoresRetryIn(Broken):
    """Makes a failed job available again at once."""

    clause = "job_queue.fail.retry"

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        return await super().fail(reservation, error, retry_in=0.0)


class NeverDeadLetters(Broken):
    """Retries a failing job forever."""

    clause = "job_queue.fail.dead_letter"

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        self._row(reservation.job.id).max_attempts += 1
        return await super().fail(reservation, error, retry_in=retry_in)


class ReleaseCountsTheAttempt(Broken):
    """Counts the attempt of a released job."""

    clause = "job_queue.release"

    async def release(self, reservation: Reservation) -> None:
        await super().release(reservation)
        self._row(reservation.job.id).attempts += 1


class LeasesNeverExpire(Broken):
    """Never takes back a job whose lease ran out."""

    clause = "job_queue.lease.expiry"

    def _take_back_expired(self, q: _Queue, now: float) -> None:
        return None


class ExtendDoesNothing(Broken):
    """Accepts a heartbeat and keeps the old lease."""

    clause = "job_queue.lease.extend"

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        self._held(reservation)
        return reservation


class RetryKeepsAttempts(Broken):
    """Revives a dead job with its spent attempts."""

    clause = "job_queue.manage.retry"

    async def retry(self, job_id: str) -> Job:
        attempts = self._row(job_id).attempts
        await super().retry(job_id)
        self._row(job_id).attempts = attempts
        return await self.get(job_id)


class CancelsRunningJobs(Broken):
    """Cancels a job whatever its state."""

    clause = "job_queue.manage.cancel"

    async def cancel(self, job_id: str) -> bool:
        row = self._row(job_id)
        if row.state == "cancelled":
            return False
        self._queues[row.queue].running.pop(row.id, None)
        row.state = "cancelled"
        return True


class GetUnknownIsKeyError(Broken):
    """Lets a KeyError escape for an unknown id."""

    clause = "job_queue.get.not_found"

    async def get(self, job_id: str) -> Job:
        return self._snapshot(self._by_id[int(job_id) if job_id.isdigit() else -1], self._clock())


class CountsScheduledAsAvailable(Broken):
    """Counts every queued job as available."""

    clause = "job_queue.counts"

    async def counts(self, queue: str) -> JobCounts:
        c = await super().counts(queue)
        return replace(c, available=c.available + c.scheduled, scheduled=0)


class ExtendCountsAnAttempt(Broken):
    """Counts a heartbeat as an attempt (only the model notices)."""

    clause = "job_queue.model"

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        extended = await super().extend(reservation, lease)
        self._row(reservation.job.id).attempts += 1
        return extended


class ForgetsFinishedQueues(Broken):
    """Lists only the queues holding unfinished jobs."""

    clause = "job_queue.inspect"

    async def queues(self) -> list[str]:
        return sorted(
            name for name, q in self._queues.items() if q.ready or q.scheduled or q.running
        )


class LeaksConnectionErrors(Broken):
    """Lets the driver's OSError through instead of raising UnavailableError."""

    clause = "job_queue.faults.unavailable"

    def _backend(self, operation: str) -> None:
        if self._faults is not None:
            self._faults(operation)


class FailsAfterWriting(Broken):
    """Reaches its backend only after an enqueue has stored the job (a half-done call)."""

    clause = "job_queue.faults.unavailable"

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        faults, self._faults = self._faults, None
        try:
            ids = await super().enqueue_many(jobs)
        finally:
            self._faults = faults
        self._backend("enqueue")
        return ids


class SharesQueueNames(Broken):
    """Hands out its own list of queue names, which the caller may then change."""

    clause = "job_queue.snapshots"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._names: list[str] | None = None

    async def queues(self) -> list[str]:
        if self._names is None:
            self._names = await super().queues()
        return self._names


class RefusesTopPriority(Broken):
    """Reads the priority range as half open, refusing MAX_PRIORITY itself."""

    clause = "job_queue.enqueue.priority_range"

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        if any(job.priority == MAX_PRIORITY for job in jobs):
            raise InvalidInputError("priority out of range", field="priority")
        return await super().enqueue_many(jobs)


class DeadLettersKeepTheirKey(Broken):
    """Keeps a dead job's unique key held, so the work can never be enqueued again."""

    clause = "job_queue.unique.merge"

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        row = self._held(reservation)
        key, queue = row.unique_key, row.queue
        job = await super().fail(reservation, error, retry_in=retry_in)
        if key is not None and job.state is JobState.DEAD:
            self._queues[queue].holders[key] = row.id
        return job


class AcceptsInfiniteDelay(Broken):
    """Reads an infinite delay as "never run" instead of refusing it."""

    clause = "job_queue.enqueue.invalid"

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        return await super().enqueue_many(
            [replace(j, delay=None, run_at=1e300) if j.delay == math.inf else j for j in jobs]
        )


class BadJobsNameNoField(Broken):
    """Refuses every bad job, but without saying which field is at fault."""

    clause = "job_queue.enqueue.invalid"

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        try:
            return await super().enqueue_many(jobs)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, port="JobQueue") from None


class ReserveTrustsTheLease(Broken):
    """Checks every reserve argument but the lease, so a lease of 0 or NaN hands out a job
    whose lease has already run out."""

    clause = "job_queue.reserve.invalid"

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        check_reserve(queue, limit, 1.0, wait)
        return self._take(queue, limit, lease)


class FailIgnoresBadRetryIn(Broken):
    """Reads a negative or non-finite retry_in as "use the backoff" instead of refusing it."""

    clause = "job_queue.fail.invalid"

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        if isinstance(retry_in, int | float) and not (math.isfinite(retry_in) and retry_in >= 0):
            retry_in = None
        return await super().fail(reservation, error, retry_in=retry_in)


class ExtendTrustsTheLease(Broken):
    """Moves the lease's end by whatever it is given: 0 or -1 ends the lease at once."""

    clause = "job_queue.extend.invalid"

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        row = self._held(reservation)
        now = self._clock()
        row.lease_until = now + lease
        return Reservation(self._snapshot(row, now), reservation.token)


class CompleteTrustsItsArgument(Broken):
    """Reads the job id off whatever complete is given (an AttributeError, or a job completed
    by its id alone)."""

    clause = "job_queue.reservation.invalid"

    async def complete(self, reservation: Reservation) -> None:
        job_id = reservation if isinstance(reservation, str) else reservation.job.id
        row = self._row(job_id)
        if row.state != "running":
            raise ConflictError(f"job {job_id} is not running", port="JobQueue")
        del self._queues[row.queue].running[row.id]
        row.state, row.token, row.lease_until = "completed", None, None


class AcceptsForgedTokens(Broken):
    """Checks that the job is running, not that the token is the one it issued."""

    clause = "job_queue.reservation.unknown"

    def _held(self, reservation: Reservation) -> _Row:
        row = self._row(reservation.job.id)
        if row.state != "running":
            raise ConflictError(f"job {row.id} is not running", port="JobQueue")
        return row


class JobIdsOfAnyType(Broken):
    """Looks jobs up by ``str(job_id)``, so ``get(1)`` finds job "1"."""

    clause = "job_queue.job_id.invalid"

    def _row(self, job_id: Any) -> _Row:
        return super()._row(str(job_id))


class UnknownStatesListNothing(Broken):
    """Lists nothing for a state it does not know instead of refusing it."""

    clause = "job_queue.list.invalid"

    async def list_jobs(self, queue: str, state: JobState, *, limit: int = 100) -> list[Job]:
        if state not in set(JobState):
            return []
        return await super().list_jobs(queue, state, limit=limit)


VARIANTS: list[type[Broken]] = [
    ForgetsMaxAttempts,
    SharesPayload,
    StoresReprOfBadPayloads,
    StoresPartOfABatch,
    IgnoresUniqueKeys,
    IgnoresPriority,
    RunsScheduledJobsEarly,
    NeverWaits,
    HandsOutRunningJobs,
    RerunsCompletedJobs,
    IgnoresRetryIn,
    NeverDeadLetters,
    ReleaseCountsTheAttempt,
    LeasesNeverExpire,
    ExtendDoesNothing,
    RetryKeepsAttempts,
    CancelsRunningJobs,
    GetUnknownIsKeyError,
    CountsScheduledAsAvailable,
    ExtendCountsAnAttempt,
    ForgetsFinishedQueues,
    LeaksConnectionErrors,
    FailsAfterWriting,
    SharesQueueNames,
    RefusesTopPriority,
    DeadLettersKeepTheirKey,
    AcceptsInfiniteDelay,
    BadJobsNameNoField,
    ReserveTrustsTheLease,
    FailIgnoresBadRetryIn,
    ExtendTrustsTheLease,
    CompleteTrustsItsArgument,
    AcceptsForgedTokens,
    JobIdsOfAnyType,
    UnknownStatesListNothing,
]

__all__ = ["VARIANTS", "Broken", "JobState"]
