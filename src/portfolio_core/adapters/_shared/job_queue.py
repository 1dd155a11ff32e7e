"""Input checks and encoding shared by every JobQueue adapter, so they refuse the same input
with the same errors."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from portfolio_core.adapters._shared.codec import check_json_value
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.job_queue import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Job,
    JobState,
    NewJob,
    Reservation,
)

__all__ = [
    "EXPIRED",
    "Prepared",
    "Reserve",
    "check_job_id",
    "check_lease",
    "check_limit",
    "check_queue",
    "check_reservation",
    "check_reserve",
    "check_retry_in",
    "check_state",
    "decode_payload",
    "prepare",
    "queued_state",
    "take_or_wait",
]

T = TypeVar("T")

PORT = "JobQueue"
MAX_QUEUE = 128
MAX_TASK = 255
MAX_UNIQUE_KEY = 255
MAX_ERROR = 4000
#: ``last_error`` of a job whose lease ran out with its attempts spent
EXPIRED = "lease expired (the worker holding it stopped or stalled)"

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated `NewJob`: its payload as JSON text and its absolute ``run_at``."""

    task: str
    payload_json: str
    queue: str
    run_at: float
    priority: int
    max_attempts: int
    unique_key: str | None


def _text(value: Any, field: str, limit: int) -> str:
    if type(value) is not str or not value:
        raise InvalidInputError(f"{field} must be a non-empty string", field=field, port=PORT)
    if len(value) > limit:
        raise InvalidInputError(
            f"{field} is longer than {limit} characters", field=field, port=PORT
        )
    if "\x00" in value:
        raise InvalidInputError(f"{field} must not contain U+0000", field=field, port=PORT)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{field} is not valid Unicode text", field=field, port=PORT
        ) from None
    return value


def _strings_ok(value: Any) -> None:
    """U+0000 and lone surrogates cannot be stored by every backend: refuse them everywhere."""
    if type(value) is str:
        if "\x00" in value:
            raise InvalidInputError("payload must not contain U+0000", field="payload", port=PORT)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(
                "payload holds a string that is not valid Unicode", field="payload", port=PORT
            ) from None
    elif type(value) is list:
        for item in value:
            _strings_ok(item)
    elif type(value) is dict:
        for k, item in value.items():
            _strings_ok(k)
            _strings_ok(item)


def _finite(value: Any, field: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise InvalidInputError(f"{field} must be a finite number", field=field, port=PORT)
    return float(value)


def check_queue(queue: Any) -> str:
    return _text(queue, "queue", MAX_QUEUE)


def prepare(job: Any, now: float) -> Prepared:
    """Validate ``job`` and encode it; raises InvalidInputError naming the bad field."""
    if not isinstance(job, NewJob):
        raise InvalidInputError(
            f"enqueue takes a NewJob, got {type(job).__name__}", field="job", port=PORT
        )
    task = _text(job.task, "task", MAX_TASK)
    queue = check_queue(job.queue)
    try:
        check_json_value(job.payload, field="payload", top=False)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.message, field="payload", port=PORT) from None
    _strings_ok(job.payload)
    payload_json = _ENCODER.encode(job.payload)
    if job.run_at is not None and job.delay is not None:
        raise InvalidInputError("give run_at or delay, not both", field="run_at", port=PORT)
    if job.delay is not None:
        delay = _finite(job.delay, "delay")
        if delay < 0:
            raise InvalidInputError("delay must not be negative", field="delay", port=PORT)
        run_at = now + delay
    elif job.run_at is not None:
        run_at = _finite(job.run_at, "run_at")
    else:
        run_at = now
    if type(job.priority) is not int or not MIN_PRIORITY <= job.priority <= MAX_PRIORITY:
        raise InvalidInputError(
            f"priority must be an int in [{MIN_PRIORITY}, {MAX_PRIORITY}]",
            field="priority",
            port=PORT,
        )
    if type(job.max_attempts) is not int or job.max_attempts < 1:
        raise InvalidInputError(
            "max_attempts must be an int of at least 1", field="max_attempts", port=PORT
        )
    unique = None if job.unique_key is None else _text(job.unique_key, "unique_key", MAX_UNIQUE_KEY)
    return Prepared(task, payload_json, queue, run_at, job.priority, job.max_attempts, unique)


def decode_payload(text: str | bytes) -> Any:
    return json.loads(text)


def check_limit(limit: Any) -> int:
    if type(limit) is not int or limit < 1:
        raise InvalidInputError("limit must be an int of at least 1", field="limit", port=PORT)
    return limit


def check_lease(lease: Any) -> float:
    value = _finite(lease, "lease")
    if value <= 0:
        raise InvalidInputError("lease must be positive", field="lease", port=PORT)
    return value


def check_wait(wait: Any) -> float:
    value = _finite(wait, "wait")
    if value < 0:
        raise InvalidInputError("wait must not be negative", field="wait", port=PORT)
    return value


class Reserve(NamedTuple):
    """The checked arguments of ``reserve``."""

    queue: str
    limit: int
    lease: float
    wait: float


def check_reserve(queue: Any, limit: Any, lease: Any, wait: Any) -> Reserve:
    """``reserve``'s arguments checked (InvalidInputError names the first bad one)."""
    return Reserve(check_queue(queue), check_limit(limit), check_lease(lease), check_wait(wait))


async def take_or_wait(
    take: Callable[[], Awaitable[list[T]]], wakeup: asyncio.Event, *, wait: float, poll: float
) -> list[T]:
    """What ``take()`` returns first that is not empty, trying again whenever ``wakeup`` is
    set (this process enqueued something) and at least every ``poll`` seconds (another
    process may have); the empty list once ``wait`` seconds have passed. ``take`` is tried
    at least once, also when ``wait`` is 0."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        wakeup.clear()
        taken = await take()
        remaining = deadline - loop.time()
        if taken or remaining <= 0:
            return taken
        try:
            async with asyncio.timeout(min(remaining, poll)):
                await wakeup.wait()
        except TimeoutError:
            pass


class EnqueueWakeup:
    """Wakes this instance's waiting ``reserve`` calls when it enqueues or requeues a job.

    `notify` is cheap and safe before any ``reserve`` has waited (it then does nothing); the
    event itself is made on the first `take_or_wait`, inside the running loop.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def notify(self) -> None:
        """Wake every ``reserve`` waiting in `take_or_wait` now."""
        if self._event is not None:
            self._event.set()

    async def take_or_wait(
        self, take: Callable[[], Awaitable[list[T]]], *, wait: float, poll: float
    ) -> list[T]:
        """The module's `take_or_wait` with this instance's event as the wakeup."""
        if self._event is None:
            self._event = asyncio.Event()
        return await take_or_wait(take, self._event, wait=wait, poll=poll)


def check_retry_in(retry_in: Any) -> float | None:
    if retry_in is None:
        return None
    value = _finite(retry_in, "retry_in")
    if value < 0:
        raise InvalidInputError("retry_in must not be negative", field="retry_in", port=PORT)
    return value


def check_error(error: Any) -> str:
    if type(error) is not str:
        raise InvalidInputError("error must be a string", field="error", port=PORT)
    text = error.replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")
    return text[:MAX_ERROR]


def check_job_id(job_id: Any) -> str:
    if type(job_id) is not str or not job_id:
        raise InvalidInputError("job_id must be a non-empty string", field="job_id", port=PORT)
    return job_id


def check_reservation(reservation: Any) -> Reservation:
    """``reservation`` when it is a `Reservation` of a `Job` with a non-empty ``str`` id and
    token; else InvalidInputError naming ``reservation`` (whether the queue issued it is for
    the adapter to check: NotFoundError or ConflictError)."""
    if (
        not isinstance(reservation, Reservation)
        or not isinstance(reservation.job, Job)
        or type(reservation.job.id) is not str
        or not reservation.job.id
        or type(reservation.token) is not str
        or not reservation.token
    ):
        raise InvalidInputError(
            "expected a Reservation returned by reserve (a Job and its non-empty token), got "
            f"{type(reservation).__name__}",
            field="reservation",
            port=PORT,
        )
    return reservation


def check_state(state: Any) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        raise InvalidInputError(
            f"state must be one of {', '.join(s.value for s in JobState)}", field="state", port=PORT
        ) from None


def queued_state(run_at: float, now: float) -> JobState:
    """How a queued job is reported: scheduled before ``run_at``, available from then on."""
    return JobState.SCHEDULED if run_at > now else JobState.AVAILABLE
