"""The cron schedule's loop: it enqueues due ticks until stopped, waits with the ``sleep``
it was given, and a tick the queue refused is enqueued again at the next wake-up, not
lost."""

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


async def test_the_loop_waits_with_the_sleep_it_was_given() -> None:
    """A sleep that moves a fake clock drives the schedule through three minutes of ticks
    at once: every wait goes through it, none longer than a second."""
    clock = FakeClock()
    clock.set(1_700_000_000.0)
    queue = ScriptedJobQueue()
    waits: list[float] = []
    stop = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)
        if len(queue.calls_to("enqueue")) == 3:
            stop.set()
        await asyncio.sleep(0)

    schedule = CronSchedule(queue, [Periodic("report", "* * * * *")], clock=clock, sleep=sleep)
    async with asyncio.timeout(5):
        await schedule.run(stop)
    ticks = [call.args[0].run_at for call in queue.calls_to("enqueue")]
    assert ticks == [1_700_000_040.0, 1_700_000_100.0, 1_700_000_160.0]
    assert waits, "the loop never called the sleep it was given"
    assert max(waits) <= 1.0, f"a wait of {max(waits)} s: the loop must wake every second"


async def test_stop_ends_a_long_sleep_at_once() -> None:
    slept = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.set()
        await asyncio.sleep(3600)

    schedule = CronSchedule(ScriptedJobQueue(), [], sleep=sleep)
    stop = asyncio.Event()
    running = asyncio.create_task(schedule.run(stop))
    async with asyncio.timeout(5):
        await slept.wait()
        stop.set()
        await running
