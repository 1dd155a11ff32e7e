"""Arguments: every method refuses what the port's argument rules refuse, and changes nothing.

Each bad argument must raise `InvalidInputError` naming it (``field``) before anything is
touched: a refused ``reserve`` takes no job, a refused ``fail`` or ``extend`` leaves the
reservation holding its job with its lease as it was.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from portfolio_core.ports.errors import ConflictError, InvalidInputError, NotFoundError
from portfolio_core.ports.job_queue import JobCounts, JobQueue, JobState, NewJob, Reservation
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.job_queue._common import Q
from portfolio_core.testing.suite import ContractSuite

NAN = float("nan")
INF = float("inf")

BAD_RESERVE = [
    pytest.param("queue", "", id="queue-empty"),
    pytest.param("queue", "q" * 129, id="queue-long"),
    pytest.param("queue", 7, id="queue-int"),
    pytest.param("limit", 0, id="limit-zero"),
    pytest.param("limit", -1, id="limit-negative"),
    pytest.param("limit", 1.5, id="limit-float"),
    pytest.param("limit", True, id="limit-bool"),
    pytest.param("lease", 0, id="lease-zero"),
    pytest.param("lease", -5, id="lease-negative"),
    pytest.param("lease", NAN, id="lease-nan"),
    pytest.param("lease", INF, id="lease-inf"),
    pytest.param("lease", True, id="lease-bool"),
    pytest.param("lease", "30", id="lease-str"),
    pytest.param("wait", -0.5, id="wait-negative"),
    pytest.param("wait", NAN, id="wait-nan"),
    pytest.param("wait", INF, id="wait-inf"),
    pytest.param("wait", True, id="wait-bool"),
]

BAD_LEASES = [
    pytest.param(0, id="zero"),
    pytest.param(-1, id="negative"),
    pytest.param(NAN, id="nan"),
    pytest.param(INF, id="inf"),
    pytest.param(True, id="bool"),
    pytest.param("5", id="str"),
    pytest.param(None, id="none"),
]

BAD_FAILURES = [
    pytest.param("error", None, {}, id="error-none"),
    pytest.param("error", 42, {}, id="error-int"),
    pytest.param("error", b"boom", {}, id="error-bytes"),
    pytest.param("retry_in", "boom", {"retry_in": -1}, id="retry-in-negative"),
    pytest.param("retry_in", "boom", {"retry_in": NAN}, id="retry-in-nan"),
    pytest.param("retry_in", "boom", {"retry_in": INF}, id="retry-in-inf"),
    pytest.param("retry_in", "boom", {"retry_in": True}, id="retry-in-bool"),
    pytest.param("retry_in", "boom", {"retry_in": "1"}, id="retry-in-str"),
]

METHODS = ["complete", "fail", "extend", "release"]


def _call(adapter: JobQueue, method: str, reservation: Any) -> Any:
    if method == "fail":
        return adapter.fail(reservation, "boom", retry_in=0)
    if method == "extend":
        return adapter.extend(reservation, 60)
    return getattr(adapter, method)(reservation)


async def _still_held(adapter: JobQueue, held: Reservation, what: str) -> None:
    """The job is running under ``held`` as reserved, and ``held`` still completes it."""
    job = await adapter.get(held.id)
    assert (job.state, job.attempts, job.last_error) == (JobState.RUNNING, 1, None), (
        f"a refused {what} changed the job: {job}"
    )
    assert job.lease_until == pytest.approx(held.lease_until), (
        f"a refused {what} moved the lease's end from {held.lease_until} to {job.lease_until}"
    )
    await adapter.complete(held)
    assert (await adapter.get(held.id)).state is JobState.COMPLETED


class ArgumentClauses(ContractSuite[JobQueue]):
    """Arguments: refused with InvalidInputError naming them, before anything changes."""

    @clause(
        "job_queue.reserve.invalid",
        "reserve refuses a bad queue, limit, lease or wait (not finite, out of range, wrong "
        "type) with InvalidInputError naming it, and takes no job",
    )
    @pytest.mark.parametrize(("field", "bad"), BAD_RESERVE)
    async def test_reserve_refuses(self, adapter: JobQueue, field: str, bad: Any) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q))
        args: dict[str, Any] = {"queue": Q, "limit": 1, "lease": 30.0, "wait": 0.0, field: bad}
        queue = args.pop("queue")
        with pytest.raises(InvalidInputError) as info:
            await adapter.reserve(queue, **args)
        assert info.value.field == field, f"reserve({field}={bad!r}) named {info.value.field!r}"
        job = await adapter.get(job_id)
        assert (job.state, job.attempts) == (JobState.AVAILABLE, 0), (
            f"a refused reserve({field}={bad!r}) took the job: {job}"
        )

    @clause(
        "job_queue.fail.invalid",
        "fail refuses an error that is not a str, or a retry_in that is not None or a finite "
        "number >= 0, with InvalidInputError naming it; the reservation still holds the job",
    )
    @pytest.mark.parametrize(("field", "error", "kw"), BAD_FAILURES)
    async def test_fail_refuses(
        self, adapter: JobQueue, field: str, error: Any, kw: dict[str, Any]
    ) -> None:
        await adapter.enqueue(NewJob("t", 1, queue=Q, max_attempts=3))
        (held,) = await adapter.reserve(Q, lease=60)
        with pytest.raises(InvalidInputError) as info:
            await adapter.fail(held, error, **kw)
        assert info.value.field == field, f"fail({error!r}, **{kw}) named {info.value.field!r}"
        await _still_held(adapter, held, "fail")

    @clause(
        "job_queue.extend.invalid",
        "extend refuses a lease that is not a finite number > 0 with InvalidInputError naming "
        "it; the lease's end stays where it was",
    )
    @pytest.mark.parametrize("bad", BAD_LEASES)
    async def test_extend_refuses(self, adapter: JobQueue, bad: Any) -> None:
        await adapter.enqueue(NewJob("t", 1, queue=Q))
        (held,) = await adapter.reserve(Q, lease=60)
        with pytest.raises(InvalidInputError) as info:
            await adapter.extend(held, bad)
        assert info.value.field == "lease", f"extend(lease={bad!r}) named {info.value.field!r}"
        await _still_held(adapter, held, "extend")

    @clause(
        "job_queue.reservation.invalid",
        "complete, fail, extend and release refuse something that is not a Reservation with "
        "InvalidInputError naming 'reservation', and change nothing",
    )
    @pytest.mark.parametrize("method", METHODS)
    async def test_not_a_reservation(self, adapter: JobQueue, method: str) -> None:
        await adapter.enqueue(NewJob("t", 1, queue=Q))
        (held,) = await adapter.reserve(Q, lease=60)
        for bad in (None, held.id, held.job, (held.job, held.token), replace(held, token="")):
            with pytest.raises(InvalidInputError) as info:
                await _call(adapter, method, bad)
            assert info.value.field == "reservation", (
                f"{method}({bad!r}) named {info.value.field!r}"
            )
        await _still_held(adapter, held, method)

    @clause(
        "job_queue.reservation.unknown",
        "a reservation the queue did not hand out changes nothing: NotFoundError for a job "
        "it does not hold, ConflictError for a token it did not issue",
    )
    @pytest.mark.parametrize("method", METHODS)
    async def test_reservation_not_issued(self, adapter: JobQueue, method: str) -> None:
        await adapter.enqueue(NewJob("t", 1, queue=Q))
        (held,) = await adapter.reserve(Q, lease=60)
        unknown = Reservation(replace(held.job, id="999999999"), held.token)
        with pytest.raises(NotFoundError):
            await _call(adapter, method, unknown)
        forged = Reservation(held.job, held.token[::-1] + "x")
        with pytest.raises(ConflictError):
            await _call(adapter, method, forged)
        await _still_held(adapter, held, method)

    @clause(
        "job_queue.job_id.invalid",
        "get, retry and cancel refuse a job id that is not a non-empty str with "
        "InvalidInputError naming 'job_id'",
    )
    async def test_bad_job_ids(self, adapter: JobQueue) -> None:
        job_id = await adapter.enqueue(NewJob("t", 1, queue=Q, delay=30))
        for method in ("get", "retry", "cancel"):
            for bad in ("", None, 1, [job_id]):
                with pytest.raises(InvalidInputError) as info:
                    await getattr(adapter, method)(bad)
                assert info.value.field == "job_id", f"{method}({bad!r}) named {info.value.field!r}"
        job = await adapter.get(job_id)
        assert job.state is JobState.SCHEDULED, f"a refused call changed the job: {job}"

    @clause(
        "job_queue.list.invalid",
        "list_jobs and counts refuse a bad queue, an unknown state or a limit below 1 with "
        "InvalidInputError naming it",
    )
    async def test_bad_listing_arguments(self, adapter: JobQueue) -> None:
        await adapter.enqueue(NewJob("t", 1, queue=Q))
        calls: list[tuple[str, Any]] = [
            ("queue", lambda: adapter.list_jobs("", JobState.AVAILABLE)),
            ("queue", lambda: adapter.list_jobs(3, JobState.AVAILABLE)),  # type: ignore[arg-type]
            ("state", lambda: adapter.list_jobs(Q, "finished")),  # type: ignore[arg-type]
            ("state", lambda: adapter.list_jobs(Q, None)),  # type: ignore[arg-type]
            ("limit", lambda: adapter.list_jobs(Q, JobState.AVAILABLE, limit=0)),
            ("limit", lambda: adapter.list_jobs(Q, JobState.AVAILABLE, limit=2.0)),  # type: ignore[arg-type]
            ("queue", lambda: adapter.counts("")),
            ("queue", lambda: adapter.counts("q" * 129)),
        ]
        for field, call in calls:
            with pytest.raises(InvalidInputError) as info:
                await call()
            assert info.value.field == field, f"a bad {field} was reported as {info.value.field!r}"
        assert await adapter.counts(Q) == JobCounts(available=1)
