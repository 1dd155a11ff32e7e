"""JobQueue: durable background work with leases, retries and dead letters.

Contract
--------
Enqueueing
  * ``enqueue(job)`` stores a `NewJob` and returns its id (a string; ids of one
    adapter grow in enqueue order). The payload must be JSON-compatible (``None``, bool,
    int, finite float, str, lists and string-keyed dicts of those; tuples, sets, bytes and
    NaN are refused rather than converted); otherwise, and for any other bad field, it
    raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] naming the field and
    stores nothing. ``enqueue_many`` stores every job or, on bad input in any of them, none.
  * ``run_at`` (clock seconds) or ``delay`` (seconds from now) schedules the job; neither
    means now. ``priority`` is an integer in ``[-32768, 32767]``; higher runs first.
  * Unique keys: a job with ``unique_key`` holds that key (per queue) until it is dead or
    cancelled. Enqueueing a key that a scheduled, available, running or completed job holds
    changes nothing and returns the holder's id (merge, never an error), so a producer may
    repeat an enqueue safely. See docs/decisions (at-least-once and unique keys).

Consuming (at-least-once)
  * ``reserve(queue, limit=, lease=, wait=)`` takes up to ``limit`` available jobs (``run_at``
    reached) in order: higher priority first, then earlier ``run_at``, then enqueue order.
    Each is ``running`` under a lease of ``lease`` seconds, its ``attempts`` counted up by
    one, and returned with a fresh `Reservation` token. With ``wait`` > 0 and nothing
    available, it waits up to ``wait`` seconds for a job (an enqueue elsewhere wakes it) and
    may return an empty list.
  * Two reservations never hold the same job at once: concurrent reservers each get
    different jobs, and with nobody crashing every job is completed exactly once.
  * Leases are enforced when jobs are reserved: the first ``reserve`` on a queue after a
    job's lease ran out takes the job back, making it available again (in its old place in
    the order, and possibly handing it out in the same call), or dead (``last_error``
    says the lease expired) when its attempts are spent. Until that happens the holder may
    still complete, fail, extend or release it. Afterwards the old token is stale.
  * ``complete``, ``fail``, ``extend`` and ``release`` need the current token: with a stale
    one they raise [ConflictError][portfolio_core.ports.errors.ConflictError] and change nothing.
    A completed job is never handed out again.
  * ``fail(reservation, error, retry_in=)`` records ``error`` as ``last_error``; when
    ``attempts < max_attempts`` the job is available again after ``retry_in`` seconds
    (``None``: `default_backoff` of its attempts), else it is dead (a dead letter).
    ``release`` gives a job back unrun (shutdown): available at once, the attempt uncounted.
    ``extend`` (heartbeat) moves the lease's end to ``lease`` seconds from now.

Arguments
  * Every bad argument raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError]
    naming it (``field``) before anything changes: a refused ``reserve`` takes no job, a
    refused ``fail`` or ``extend`` leaves the reservation holding its job, lease unchanged.
  * Texts (``task``, ``queue``, ``unique_key``) are non-empty ``str`` of Unicode text (no lone
    surrogates) without U+0000: ``queue`` at most 128 characters, ``task`` and
    ``unique_key`` at most 255.
  * Numbers are ``int`` or ``float`` (``bool`` is refused although it is an ``int``) and
    finite (no NaN, no infinity): ``lease`` (of ``reserve`` and ``extend``) > 0; ``wait``,
    ``delay`` and ``retry_in`` (``None`` allowed) >= 0; ``limit`` and ``max_attempts`` are
    ``int`` >= 1; ``priority`` an ``int`` in range.
  * ``error`` (of ``fail``) is a ``str``; job ids are non-empty ``str``; ``state`` is a
    `JobState` (or its value).
  * ``complete``, ``fail``, ``extend`` and ``release`` take a `Reservation` (a `Job` and
    its non-empty token) and raise ``InvalidInputError`` (``field="reservation"``) for
    anything else; for a reservation of a job the queue does not hold they raise
    ``NotFoundError``, for one with a token it did not issue ``ConflictError``.

Inspecting and managing
  * ``get(job_id)`` returns a snapshot `Job`; unknown ids raise
    [NotFoundError][portfolio_core.ports.errors.NotFoundError]. A queued job is reported
    ``scheduled`` before its ``run_at`` and ``available`` from then on.
  * ``list_jobs(queue, state, limit)`` lists jobs of one state in enqueue order.
  * ``retry(job_id)`` makes a dead or cancelled job available now with its attempts reset
    (``ConflictError`` when its unique key has been taken by another job meanwhile), and a
    scheduled one available now; ``cancel(job_id)`` cancels a scheduled, available or dead
    job (returns ``False`` if it was already cancelled). Both raise ``ConflictError`` for a
    running or completed job and ``NotFoundError`` for an unknown one.
  * ``counts(queue)`` counts the queue's jobs per state (`JobCounts`).
  * With capability ``job_queue.inspect`` (`InspectableJobQueue`), ``queues()``
    lists, sorted, the name of every queue holding at least one job, whatever its state
    (an operator's view can then be built without knowing the queue names).

Time
  * Adapters take an injectable ``clock`` (seconds, default ``time.time``: jobs outlive
    processes). ``run_at``, ``enqueued_at`` and lease ends are readings of that clock.
Snapshots and failures
  * Every list and `Job` returned (``enqueue_many``, ``reserve``, ``get``, ``list_jobs``,
    ``queues``, ...) is the caller's own: changing it, or a payload in it, changes nothing in
    the queue or in later results.
  * A backend that cannot be reached raises
    [UnavailableError][portfolio_core.ports.errors.UnavailableError] (never a driver's own
    connection error), and a call that raised it changed nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Job",
    "JobCounts",
    "JobQueue",
    "InspectableJobQueue",
    "JobQueueCapability",
    "JobState",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "NewJob",
    "Reservation",
    "default_backoff",
]

MIN_PRIORITY = -32768
MAX_PRIORITY = 32767


class JobQueueCapability(StrEnum):
    """Optional parts of the JobQueue port."""

    PERSISTENT = "job_queue.persistent"
    """Jobs survive a restart of the process."""
    SHARED = "job_queue.shared"
    """Several processes (or machines) share the queues."""
    WAKEUP = "job_queue.wakeup"
    """A waiting ``reserve`` is woken by an enqueue in another process, without polling."""
    INSPECT = "job_queue.inspect"
    """The adapter lists its queues: ``queues()`` (`InspectableJobQueue`)."""


class JobState(StrEnum):
    """Where a job is in its life."""

    SCHEDULED = "scheduled"
    """Queued, ``run_at`` not reached yet."""
    AVAILABLE = "available"
    """Queued and due: the next ``reserve`` may take it."""
    RUNNING = "running"
    """Reserved under a lease."""
    COMPLETED = "completed"
    """Completed; never handed out again."""
    DEAD = "dead"
    """Its attempts are spent (a dead letter); ``retry`` revives it."""
    CANCELLED = "cancelled"
    """Cancelled before it ran; ``retry`` revives it."""


def default_backoff(attempts: int) -> float:
    """Seconds before a failed job with ``attempts`` attempts made runs again when ``fail``
    is given no ``retry_in``: 1, 2, 4, ... doubling, at most 300."""
    return float(min(2 ** max(attempts - 1, 0), 300))


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue.

    Attributes:
        task: the handler's registered name (``"send_email"``; non-empty, at most 255
            characters).
        payload: JSON-compatible arguments for the handler.
        queue: the queue name (non-empty, at most 128 characters).
        run_at: clock seconds before which it does not run (exclusive with ``delay``).
        delay: seconds from now before which it does not run.
        priority: higher runs first; ``[-32768, 32767]``.
        max_attempts: reservations allowed before it is dead (at least 1).
        unique_key: at most one live job of the queue holds this key (see the contract;
            non-empty, at most 255 characters).
    """

    task: str
    payload: Any = None
    queue: str = "default"
    run_at: float | None = None
    delay: float | None = None
    priority: int = 0
    max_attempts: int = 3
    unique_key: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of a stored job.

    ``state`` is one of `JobState`; ``attempts`` counts reservations made (including
    a running one); ``lease_until`` is set while running; ``last_error`` is the error of the
    last failure (or lease expiry), kept across retries.
    """

    id: str
    task: str
    payload: Any
    queue: str
    state: JobState
    priority: int
    attempts: int
    max_attempts: int
    run_at: float
    enqueued_at: float
    unique_key: str | None = None
    last_error: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """A job handed to one consumer, and the token proving it still holds the lease."""

    job: Job
    token: str

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def lease_until(self) -> float:
        return self.job.lease_until if self.job.lease_until is not None else 0.0


@dataclass(frozen=True, slots=True)
class JobCounts:
    """Jobs of one queue per state."""

    scheduled: int = 0
    available: int = 0
    running: int = 0
    completed: int = 0
    dead: int = 0
    cancelled: int = 0

    def of(self, state: JobState) -> int:
        """The count of ``state``."""
        return int(getattr(self, state.value))

    @property
    def pending(self) -> int:
        """Jobs not finished yet: scheduled, available and running."""
        return self.scheduled + self.available + self.running


@runtime_checkable
class JobQueue(Protocol):
    """An async job queue with leases; see the module docstring for the contract."""

    async def enqueue(self, job: NewJob) -> str:
        """Store ``job``; returns its id (or the unique key holder's id)."""
        ...

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        """Store every job (all or none on bad input); returns their ids in order."""
        ...

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        """Take up to ``limit`` due jobs under a lease, waiting up to ``wait`` seconds."""
        ...

    async def complete(self, reservation: Reservation) -> None:
        """Mark the job completed; ``ConflictError`` when the token is stale."""
        ...

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        """Record a failure: retried after ``retry_in`` or dead; returns the job after it."""
        ...

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        """Move the lease's end to ``lease`` seconds from now (a heartbeat)."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give the job back unrun: available now, this attempt not counted."""
        ...

    async def get(self, job_id: str) -> Job:
        """A snapshot of the job; ``NotFoundError`` when unknown."""
        ...

    async def list_jobs(self, queue: str, state: JobState, *, limit: int = 100) -> list[Job]:
        """Up to ``limit`` jobs of ``queue`` in ``state``, in enqueue order."""
        ...

    async def retry(self, job_id: str) -> Job:
        """Make a dead, cancelled or scheduled job available now."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job that is not running or completed; ``False`` if already cancelled."""
        ...

    async def counts(self, queue: str) -> JobCounts:
        """How many jobs of ``queue`` are in each state."""
        ...


@runtime_checkable
class InspectableJobQueue(JobQueue, Protocol):
    """A job queue that lists its queues (capability ``job_queue.inspect``)."""

    async def queues(self) -> list[str]:
        """The names of the queues holding at least one job (any state), sorted."""
        ...
