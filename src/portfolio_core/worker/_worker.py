"""The worker loop: reserve, run handlers with a timeout, heartbeat leases, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from portfolio_core.ports.errors import ConflictError, NotFoundError, PortError
from portfolio_core.ports.job_queue import JobQueue, Reservation
from portfolio_core.worker._cron import CronSchedule, Periodic
from portfolio_core.worker._handlers import Handlers

__all__ = ["Worker", "WorkerStats"]

INSTRUMENTATION = "portfolio_core.worker"


@dataclass
class WorkerStats:
    """What a worker has done since it started (the progress view and tests read it)."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    lost: int = 0
    running: int = 0
    latencies: list[float] = field(default_factory=list)
    """Seconds from a job being due (enqueued, or its run_at) to its handler starting."""


class _Metrics:
    """OpenTelemetry instruments of the worker (no-ops unless an SDK is installed)."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace

        meter = metrics.get_meter(INSTRUMENTATION)
        self.tracer = trace.get_tracer(INSTRUMENTATION)
        self.finished = meter.create_counter(
            "portfolio.worker.jobs", unit="{job}", description="jobs finished, by outcome"
        )
        self.running = meter.create_up_down_counter(
            "portfolio.worker.running", unit="{job}", description="jobs running now"
        )
        self.latency = meter.create_histogram(
            "portfolio.worker.start_latency", unit="s", description="due to handler start"
        )
        self.duration = meter.create_histogram(
            "portfolio.worker.duration", unit="s", description="handler run time"
        )


class Worker:
    """Runs the handlers of jobs reserved from one queue, at most ``concurrency`` at once.

    Guarantees:
        * A job is completed only after its handler returned; a handler exception (or a run
          longer than ``job_timeout``) fails it with the error, so the queue retries it with
          backoff or dead-letters it after its attempts. A job whose task has no handler
          fails the same way.
        * Leases are extended every ``lease / 3`` seconds while a handler runs; a job whose
          lease was taken back anyway (the worker stalled) has its handler cancelled and is
          not completed by this worker.
        * `stop` (SIGTERM in the command) stops reserving, lets running handlers finish
          for up to ``grace`` seconds, then cancels the rest and releases their jobs (given
          back unrun, attempt uncounted). A worker killed outright loses nothing either: its
          jobs run again when their leases expire.
        * ``periodic`` jobs are enqueued at their cron ticks (once per tick across workers).

    Each job gets a span (``job <task>``), a structured log line when it ends, and metrics
    (jobs by outcome, running, start latency, duration).
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Handlers,
        *,
        queue_name: str = "default",
        concurrency: int = 4,
        lease: float = 30.0,
        job_timeout: float | None = None,
        grace: float = 30.0,
        idle_wait: float = 1.0,
        periodic: list[Periodic] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.handlers = handlers
        self.queue_name = queue_name
        self.concurrency = concurrency
        self.lease = lease
        self.job_timeout = job_timeout
        self.grace = grace
        self.idle_wait = idle_wait
        self.periodic = list(periodic or [])
        self.stats = WorkerStats()
        self._clock = clock
        self._stop = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Reservation] = {}
        self._room = asyncio.Event()
        self._finishing: set[str] = set()
        self._log = structlog.get_logger(INSTRUMENTATION).bind(queue=queue_name)
        self._metrics = _Metrics()

    def stop(self) -> None:
        """Ask the worker to shut down gracefully (safe to call from a signal handler)."""
        self._stop.set()
        self._room.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> WorkerStats:
        """Work until `stop`; returns the stats."""
        helpers = [asyncio.ensure_future(self._heartbeat())]
        if self.periodic:
            schedule = CronSchedule(self.queue, self.periodic, clock=self._clock)
            helpers.append(asyncio.ensure_future(schedule.run(self._stop)))
        self._log.info("worker started", concurrency=self.concurrency)
        try:
            await self._reserve_loop()
            await self._drain()
        finally:
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await helper
        self._log.info(
            "worker stopped",
            completed=self.stats.completed,
            failed=self.stats.failed,
            released=self.stats.released,
        )
        return self.stats

    async def _reserve_loop(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                got = await self.queue.reserve(
                    self.queue_name, limit=free, lease=self.lease, wait=self.idle_wait
                )
                backoff = 0.05
            except PortError as exc:
                self._log.warning("reserve failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await self._stop.wait()
                backoff = min(backoff * 2, 5.0)
                continue
            for reservation in got:
                if self._stop.is_set():  # reserved as the stop came: give it back
                    await self._give_back(reservation)
                    continue
                task = asyncio.ensure_future(self._run_job(reservation))
                self._tasks[task] = reservation
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._room.set()

    async def _drain(self) -> None:
        if not self._tasks:
            return
        pending = set(self._tasks)
        _done, still = await asyncio.wait(pending, timeout=self.grace)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still)

    async def _give_back(self, reservation: Reservation) -> None:
        with contextlib.suppress(PortError):
            await self.queue.release(reservation)
            self.stats.released += 1

    async def _heartbeat(self) -> None:
        interval = max(self.lease / 3, 0.01)
        while True:
            await asyncio.sleep(interval)
            for task, reservation in list(self._tasks.items()):
                if reservation.id in self._finishing:
                    continue  # its handler returned: the worker is completing or failing it
                try:
                    self._tasks[task] = await self.queue.extend(reservation, self.lease)
                except (ConflictError, NotFoundError):
                    if reservation.id in self._finishing or task.done():
                        continue
                    self.stats.lost += 1
                    self._log.warning("lease lost", job_id=reservation.id)
                    self._tasks.pop(task, None)
                    task.cancel()
                except (PortError, KeyError):
                    pass  # a transient error: the next beat tries again

    def _current(self, reservation: Reservation) -> Reservation:
        for held in self._tasks.values():
            if held.id == reservation.id:
                return held
        return reservation

    async def _run_job(self, reservation: Reservation) -> None:
        job = reservation.job
        now = self._clock()
        latency = max(0.0, now - max(job.enqueued_at, job.run_at))
        self.stats.started += 1
        self.stats.running += 1
        self.stats.latencies.append(latency)
        m = self._metrics
        attrs = {"queue": self.queue_name, "task": job.task}
        m.latency.record(latency, attrs)
        m.running.add(1, attrs)
        log = self._log.bind(job_id=job.id, task=job.task, attempt=job.attempts)
        started = time.perf_counter()
        outcome = "completed"
        error: str | None = None
        with m.tracer.start_as_current_span(f"job {job.task}") as span:
            span.set_attribute("portfolio.job.id", job.id)
            span.set_attribute("portfolio.job.queue", job.queue)
            span.set_attribute("portfolio.job.attempt", job.attempts)
            try:
                try:
                    handler = self.handlers.get(job.task)
                    async with asyncio.timeout(self.job_timeout):
                        await handler(job.payload, job)
                except asyncio.CancelledError:
                    if reservation.id in {r.id for r in self._tasks.values()}:
                        outcome = "released"
                        await asyncio.shield(self._give_back(self._current(reservation)))
                    else:
                        outcome = "lost"
                    raise
                except TimeoutError:
                    error = f"TimeoutError: the handler ran longer than {self.job_timeout} s"
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                self._finishing.add(job.id)
                if error is None:
                    try:
                        await self.queue.complete(self._current(reservation))
                        self.stats.completed += 1
                    except ConflictError:
                        outcome = "lost"
                        self.stats.lost += 1
                else:
                    span.set_attribute("error.type", error.split(":", 1)[0])
                    try:
                        after = await self.queue.fail(self._current(reservation), error)
                        outcome = "dead" if after.state.value == "dead" else "failed"
                        self.stats.failed += 1
                        if outcome == "dead":
                            self.stats.dead += 1
                    except ConflictError:
                        outcome = "lost"
                        self.stats.lost += 1
            except PortError as exc:
                outcome = "unfinished"
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self._finishing.discard(job.id)
                duration = time.perf_counter() - started
                self.stats.running -= 1
                m.running.add(-1, attrs)
                m.duration.record(duration, attrs)
                m.finished.add(1, {**attrs, "outcome": outcome})
                span.set_attribute("portfolio.job.outcome", outcome)
                log_fn = log.info if outcome in ("completed", "released") else log.warning
                log_fn(
                    "job " + outcome,
                    duration_ms=round(duration * 1000, 3),
                    latency_ms=round(latency * 1000, 3),
                    error=error,
                )


def periodic_from(entries: list[dict[str, Any]], default_queue: str) -> list[Periodic]:
    """``worker.periodic`` manifest entries as `Periodic` values."""
    return [
        Periodic(
            task=str(e["task"]),
            cron=str(e["cron"]),
            payload=e.get("payload"),
            queue=str(e.get("queue", default_queue)),
            max_attempts=int(e.get("max_attempts", 3)),
        )
        for e in entries
    ]
