"""The cron schedule's loop: it enqueues due ticks until stopped, and a tick the queue
refused is enqueued again at the next wake-up, not lost."""

from __future__ import annotations

import asyncio

from portfolio_core.ports import UnavailableError
from portfolio_core.testing import FakeClock
from portfolio_core.testing.doubles import ScriptedJobQueue, computed
from portfolio_core.worker import CronSchedule, Periodic


async def test_a_tick_the_queue_refused_is_enqueued_at_the_next_wake_up() -> None:
    clock = FakeClock()
    clock.set(1_700_000_000.0)
    retried = asyncio.Event()

    def accept(job: object) -> str:
        retried.set()
        return "job-1"

    queue = ScriptedJobQueue(enqueue=[UnavailableError("down"), computed(accept)])
    schedule = CronSchedule(queue, [Periodic("report", "* * * * *")], clock=clock)
    clock.advance(40)  # the 22:14:00 tick is due
    stop = asyncio.Event()
    running = asyncio.create_task(schedule.run(stop))
    async with asyncio.timeout(10):
        await retried.wait()
        stop.set()
        await running
    first, second = (call.args[0] for call in queue.calls_to("enqueue"))
    assert first.unique_key == second.unique_key == "cron:report:1700000040.000"
    assert schedule.seconds_to_next() == 60.0  # the next tick, 22:15:00


async def test_without_periodic_jobs_the_loop_sleeps_until_stopped() -> None:
    queue = ScriptedJobQueue()
    schedule = CronSchedule(queue, [])
    assert schedule.seconds_to_next() == 3600.0
    stop = asyncio.Event()
    running = asyncio.create_task(schedule.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    async with asyncio.timeout(5):
        await running
    assert queue.calls_to("enqueue") == []
