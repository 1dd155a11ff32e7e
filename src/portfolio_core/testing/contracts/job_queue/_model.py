"""The state machine against a pure model written from the port docstring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from portfolio_core.ports.errors import ConflictError
from portfolio_core.ports.job_queue import (
    Job,
    JobCounts,
    JobQueue,
    JobState,
    NewJob,
    Reservation,
    default_backoff,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.contracts.job_queue._common import (
    Q,
)
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

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


class ModelClauses(ContractSuite[JobQueue]):
    """The state machine against a pure model written from the port docstring."""

    @clause(
        "job_queue.model",
        "any sequence of enqueues, reserves, completions, failures, leases and time behaves "
        "like the model",
    )
    def test_state_machine(
        self, make_adapter: Factory, kit_settings: KitSettings, clock: FakeClock
    ) -> None:
        run_machine(JobQueueMachine, make_adapter, kit_settings)
