"""In-process JobQueue: the reference adapter of the port (its executable specification)."""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.backend import reach_backend
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.job_queue import (
    EXPIRED,
    PORT,
    EnqueueWakeup,
    check_error,
    check_job_id,
    check_lease,
    check_limit,
    check_queue,
    check_reservation,
    check_reserve,
    check_retry_in,
    check_state,
    decode_payload,
    prepare,
    queued_state,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import ConflictError, NotFoundError
from portfolio_core.ports.job_queue import (
    Job,
    JobCounts,
    JobQueueCapability,
    JobState,
    NewJob,
    Reservation,
    default_backoff,
)

__all__ = ["MemoryJobQueue", "MemoryJobQueueConfig"]

_QUEUED = "queued"


class MemoryJobQueueConfig(BaseModel):
    """Configuration of `MemoryJobQueue` (``memory`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    poll_interval: float = Field(0.05, gt=0)


@dataclass(slots=True)
class _Row:
    id: int
    task: str
    payload_json: str
    queue: str
    priority: int
    max_attempts: int
    run_at: float
    enqueued_at: float
    unique_key: str | None
    state: str = _QUEUED
    attempts: int = 0
    last_error: str | None = None
    lease_until: float | None = None
    token: str | None = None


@dataclass(slots=True)
class _Queue:
    rows: dict[int, _Row] = field(default_factory=dict)  # every job, in enqueue order
    ready: list[tuple[int, float, int]] = field(default_factory=list)  # (-priority, run_at, id)
    scheduled: list[tuple[float, int]] = field(default_factory=list)  # (run_at, id)
    running: dict[int, _Row] = field(default_factory=dict)
    holders: dict[str, int] = field(default_factory=dict)  # unique key -> job id


class MemoryJobQueue(Configurable):
    """Jobs in dicts and heaps of one process; lost when it exits.

    A waiting ``reserve`` is woken by enqueues made through this instance and otherwise
    looks again every ``poll_interval`` seconds (so scheduled jobs falling due are seen).
    One instance serves one event loop. ``faults`` is the conformance kit's hook for
    simulating an unreachable backend (see `portfolio_core.testing.faults`): it is called with
    the operation's name before the operation reads or changes anything, and an ``OSError``
    it raises becomes [UnavailableError][portfolio_core.ports.errors.UnavailableError].
    """

    capabilities: ClassVar[frozenset[str]] = declare(JobQueueCapability.INSPECT)
    config_model: ClassVar[type[BaseModel]] = MemoryJobQueueConfig

    def __init__(
        self,
        *,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
        faults: Callable[[str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._faults = faults
        self._poll = poll_interval
        self._queues: dict[str, _Queue] = {}
        self._by_id: dict[int, _Row] = {}
        self._next_id = 1
        self._wakeup = EnqueueWakeup()

    def __repr__(self) -> str:
        return f"MemoryJobQueue(jobs={len(self._by_id)})"

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    # -- helpers -------------------------------------------------------------------------------

    def _backend(self, operation: str) -> None:
        """Where a networked queue would reach its server: the fault hook may raise here,
        before anything is read or changed. An unreachable backend (``OSError``) is
        UnavailableError."""
        reach_backend(self._faults, operation, what="job queue", port=PORT)

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue()
        return q

    def _snapshot(self, row: _Row, now: float) -> Job:
        state = queued_state(row.run_at, now) if row.state == _QUEUED else JobState(row.state)
        return Job(
            id=str(row.id),
            task=row.task,
            payload=decode_payload(row.payload_json),
            queue=row.queue,
            state=state,
            priority=row.priority,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            run_at=row.run_at,
            enqueued_at=row.enqueued_at,
            unique_key=row.unique_key,
            last_error=row.last_error,
            lease_until=row.lease_until,
        )

    def _push(self, q: _Queue, row: _Row, now: float) -> None:
        if row.run_at <= now:
            heapq.heappush(q.ready, (-row.priority, row.run_at, row.id))
        else:
            heapq.heappush(q.scheduled, (row.run_at, row.id))

    def _row(self, job_id: Any) -> _Row:
        text = check_job_id(job_id)
        row = self._by_id.get(int(text)) if text.isdigit() else None
        if row is None:
            raise NotFoundError(f"no job {text!r}", key=text, port=PORT)
        return row

    def _held(self, reservation: Reservation) -> _Row:
        row = self._row(reservation.job.id)
        if row.state != "running" or row.token != reservation.token:
            raise ConflictError(
                f"job {row.id} is no longer held by this reservation (its lease was taken "
                "back, or it was already finished)",
                port=PORT,
            )
        return row

    # -- producing -----------------------------------------------------------------------------

    async def enqueue(self, job: NewJob) -> str:
        return (await self.enqueue_many([job]))[0]

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        now = self._clock()
        prepared = [prepare(job, now) for job in jobs]
        self._backend("enqueue")
        ids: list[str] = []
        pending: dict[tuple[str, str], int] = {}
        for p in prepared:
            q = self._queue(p.queue)
            if p.unique_key is not None:
                holder = q.holders.get(p.unique_key)
                if holder is None:
                    holder = pending.get((p.queue, p.unique_key))
                if holder is not None:
                    ids.append(str(holder))
                    continue
            row = _Row(
                id=self._next_id,
                task=p.task,
                payload_json=p.payload_json,
                queue=p.queue,
                priority=p.priority,
                max_attempts=p.max_attempts,
                run_at=p.run_at,
                enqueued_at=now,
                unique_key=p.unique_key,
            )
            self._next_id += 1
            self._by_id[row.id] = row
            q.rows[row.id] = row
            if p.unique_key is not None:
                q.holders[p.unique_key] = row.id
                pending[(p.queue, p.unique_key)] = row.id
            self._push(q, row, now)
            ids.append(str(row.id))
        self._wakeup.notify()
        return ids

    # -- consuming -----------------------------------------------------------------------------

    def _take_back_expired(self, q: _Queue, now: float) -> None:
        for row in [r for r in q.running.values() if (r.lease_until or 0.0) <= now]:
            del q.running[row.id]
            row.token = None
            row.lease_until = None
            if row.attempts >= row.max_attempts:
                row.state = "dead"
                row.last_error = EXPIRED
                if row.unique_key is not None:
                    q.holders.pop(row.unique_key, None)
            else:
                row.state = _QUEUED
                self._push(q, row, now)

    def _take(self, name: str, limit: int, lease: float) -> list[Reservation]:
        q = self._queues.get(name)
        if q is None:
            return []
        now = self._clock()
        self._take_back_expired(q, now)
        while q.scheduled and q.scheduled[0][0] <= now:
            run_at, job_id = heapq.heappop(q.scheduled)
            row = q.rows[job_id]
            if row.state == _QUEUED and row.run_at == run_at:
                heapq.heappush(q.ready, (-row.priority, row.run_at, row.id))
        taken: list[Reservation] = []
        while q.ready and len(taken) < limit:
            _neg_priority, run_at, job_id = heapq.heappop(q.ready)
            row = q.rows[job_id]
            if row.state != _QUEUED or row.run_at != run_at or row.run_at > now:
                continue  # a stale heap entry (the job moved since)
            row.state = "running"
            row.attempts += 1
            row.lease_until = now + lease
            row.token = uuid.uuid4().hex
            q.running[row.id] = row
            taken.append(Reservation(self._snapshot(row, now), row.token))
        return taken

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        name, limit, lease, wait = check_reserve(queue, limit, lease, wait)

        async def take() -> list[Reservation]:
            self._backend("reserve")
            return self._take(name, limit, lease)

        return await self._wakeup.take_or_wait(take, wait=wait, poll=self._poll)

    async def complete(self, reservation: Reservation) -> None:
        check_reservation(reservation)
        self._backend("complete")
        row = self._held(reservation)
        del self._queues[row.queue].running[row.id]
        row.state = "completed"
        row.token = None
        row.lease_until = None

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        check_reservation(reservation)
        message = check_error(error)
        delay = check_retry_in(retry_in)
        self._backend("fail")
        row = self._held(reservation)
        q = self._queues[row.queue]
        now = self._clock()
        del q.running[row.id]
        row.token = None
        row.lease_until = None
        row.last_error = message
        if row.attempts >= row.max_attempts:
            row.state = "dead"
            if row.unique_key is not None:
                q.holders.pop(row.unique_key, None)
        else:
            row.state = _QUEUED
            row.run_at = now + (default_backoff(row.attempts) if delay is None else delay)
            self._push(q, row, now)
            self._wakeup.notify()
        return self._snapshot(row, now)

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        check_reservation(reservation)
        seconds = check_lease(lease)
        self._backend("extend")
        row = self._held(reservation)
        now = self._clock()
        row.lease_until = now + seconds
        return Reservation(self._snapshot(row, now), reservation.token)

    async def release(self, reservation: Reservation) -> None:
        check_reservation(reservation)
        self._backend("release")
        row = self._held(reservation)
        q = self._queues[row.queue]
        now = self._clock()
        del q.running[row.id]
        row.state = _QUEUED
        row.attempts -= 1
        row.token = None
        row.lease_until = None
        self._push(q, row, now)
        self._wakeup.notify()

    # -- inspecting and managing -------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        self._backend("get")
        return self._snapshot(self._row(job_id), self._clock())

    async def list_jobs(self, queue: str, state: JobState, *, limit: int = 100) -> list[Job]:
        name = check_queue(queue)
        wanted = check_state(state)
        limit = check_limit(limit)
        self._backend("list_jobs")
        now = self._clock()
        q = self._queues.get(name)
        out: list[Job] = []
        for row in q.rows.values() if q is not None else ():
            if len(out) >= limit:
                break
            job = self._snapshot(row, now)
            if job.state is wanted:
                out.append(job)
        return out

    async def retry(self, job_id: str) -> Job:
        self._backend("retry")
        row = self._row(job_id)
        q = self._queues[row.queue]
        now = self._clock()
        if row.state in ("running", "completed"):
            raise ConflictError(f"job {row.id} is {row.state}: it cannot be retried", port=PORT)
        if row.state in ("dead", "cancelled"):
            if row.unique_key is not None:
                holder = q.holders.get(row.unique_key)
                if holder is not None and holder != row.id:
                    raise ConflictError(
                        f"job {holder} now holds the unique key {row.unique_key!r}", port=PORT
                    )
                q.holders[row.unique_key] = row.id
            row.state = _QUEUED
            row.attempts = 0
            row.run_at = now
            self._push(q, row, now)
        elif row.run_at > now:
            row.run_at = now
            self._push(q, row, now)
        self._wakeup.notify()
        return self._snapshot(row, now)

    async def cancel(self, job_id: str) -> bool:
        self._backend("cancel")
        row = self._row(job_id)
        if row.state == "cancelled":
            return False
        if row.state in ("running", "completed"):
            raise ConflictError(f"job {row.id} is {row.state}: it cannot be cancelled", port=PORT)
        q = self._queues[row.queue]
        if row.unique_key is not None and q.holders.get(row.unique_key) == row.id:
            del q.holders[row.unique_key]
        row.state = "cancelled"
        return True

    async def queues(self) -> list[str]:
        """The names of the queues holding at least one job, sorted."""
        self._backend("queues")
        return sorted(name for name, q in self._queues.items() if q.rows)

    async def counts(self, queue: str) -> JobCounts:
        name = check_queue(queue)
        self._backend("counts")
        now = self._clock()
        tally = dict.fromkeys(JobState, 0)
        q = self._queues.get(name)
        for row in q.rows.values() if q is not None else ():
            state = queued_state(row.run_at, now) if row.state == _QUEUED else JobState(row.state)
            tally[state] += 1
        return JobCounts(**{s.value: n for s, n in tally.items()})
