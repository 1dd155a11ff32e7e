"""Periodic jobs: cron expressions (croniter) turned into jobs, once per tick across workers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from portfolio_core.ports.errors import InvalidInputError, PortError
from portfolio_core.ports.job_queue import JobQueue, NewJob

__all__ = ["CronSchedule", "Periodic"]


@dataclass(frozen=True, slots=True)
class Periodic:
    """Enqueue ``task`` with ``payload`` on ``queue`` at every tick of ``cron`` (5 fields,
    or 6 with seconds last, as croniter reads them; times in UTC)."""

    task: str
    cron: str
    payload: Any = None
    queue: str = "default"
    max_attempts: int = 3

    def __post_init__(self) -> None:
        from croniter import croniter

        if not croniter.is_valid(self.cron):
            raise InvalidInputError(
                f"periodic task {self.task!r}: {self.cron!r} is not a cron expression",
                field="cron",
            )

    def next_tick(self, after: float) -> float:
        """The first tick strictly after ``after`` (epoch seconds)."""
        from croniter import croniter

        return float(croniter(self.cron, after).get_next(float))

    def job(self, tick: float) -> NewJob:
        """The job of ``tick``: its unique key names the tick, so every scheduler enqueueing
        it gets the same job."""
        return NewJob(
            self.task,
            self.payload,
            queue=self.queue,
            run_at=tick,
            max_attempts=self.max_attempts,
            unique_key=f"cron:{self.task}:{tick:.3f}",
        )


class CronSchedule:
    """Enqueues each periodic job at its ticks from the moment it starts (missed ticks before
    that are not back-filled). Any number of workers may run one: the tick's unique key makes
    the queue keep one job per tick (the key stays held once the job completes).

    ``clock`` reads the time (epoch seconds) and ``sleep(seconds)`` waits between wake-ups
    (``asyncio.sleep`` by default; a test passes one that moves a fake clock instead). `run`
    wakes at least every second, and at once when its ``stop`` event is set, whatever
    ``sleep`` does.
    """

    def __init__(
        self,
        queue: JobQueue,
        periodic: list[Periodic],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._queue = queue
        self._periodic = list(periodic)
        self._clock = clock
        self._sleep = sleep
        start = clock()
        self._next = [p.next_tick(start) for p in self._periodic]

    async def enqueue_due(self) -> list[str]:
        """Enqueue every tick that has come (up to now); returns the job ids."""
        now = self._clock()
        ids: list[str] = []
        for i, p in enumerate(self._periodic):
            while self._next[i] <= now:
                ids.append(await self._queue.enqueue(p.job(self._next[i])))
                self._next[i] = p.next_tick(self._next[i])
        return ids

    def seconds_to_next(self) -> float:
        if not self._periodic:
            return 3600.0
        return max(0.0, min(self._next) - self._clock())

    async def run(self, stop: asyncio.Event) -> None:
        """Enqueue ticks until ``stop`` is set; queue errors are retried at the next wake-up."""
        while not stop.is_set():
            with contextlib.suppress(PortError):
                await self.enqueue_due()
            wait = min(self.seconds_to_next(), 1.0) if self._periodic else 3600.0
            await self._sleep_unless_stopped(max(wait, 0.01), stop)

    async def _sleep_unless_stopped(self, seconds: float, stop: asyncio.Event) -> None:
        """``sleep(seconds)``, cut short when ``stop`` is set."""
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeping, stopping):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
