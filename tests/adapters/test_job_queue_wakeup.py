"""The enqueue wakeup the job queues share: a waiting ``reserve`` takes a job as soon as the
same instance enqueues one, not a poll interval later; without a notify it waits the poll."""

from __future__ import annotations

import asyncio
import time

from portfolio_core.adapters._shared.job_queue import EnqueueWakeup


async def test_notify_before_any_wait_does_nothing_and_take_is_tried_once() -> None:
    wakeup = EnqueueWakeup()
    wakeup.notify()
    calls: list[int] = []

    async def take() -> list[int]:
        calls.append(1)
        return []

    assert await wakeup.take_or_wait(take, wait=0.0, poll=10.0) == []
    assert calls == [1]


async def test_notify_wakes_a_waiting_take_before_the_poll_interval() -> None:
    wakeup = EnqueueWakeup()
    ready: list[str] = []

    async def take() -> list[str]:
        return list(ready)

    async def enqueue_later() -> None:
        await asyncio.sleep(0.05)
        ready.append("job")
        wakeup.notify()

    started = time.monotonic()
    producer = asyncio.create_task(enqueue_later())
    taken = await wakeup.take_or_wait(take, wait=30.0, poll=30.0)
    await producer
    assert taken == ["job"]
    assert time.monotonic() - started < 5.0


async def test_without_notify_the_empty_list_comes_once_wait_has_passed() -> None:
    wakeup = EnqueueWakeup()
    calls: list[int] = []

    async def take() -> list[str]:
        calls.append(1)
        return []

    started = time.monotonic()
    assert await wakeup.take_or_wait(take, wait=0.2, poll=0.05) == []
    assert time.monotonic() - started >= 0.2
    assert len(calls) >= 2
