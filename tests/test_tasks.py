"""Stopping background tasks: every task given is cancelled and done on return; its own
cancellation is never raised; other errors are raised, or dropped when asked to."""

from __future__ import annotations

import asyncio

import pytest

from portfolio_core._tasks import cancel_and_wait


async def _forever(started: asyncio.Event, cleaned: list[str], name: str) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.sleep(0)  # clean-up that itself awaits: the caller must wait for it
        cleaned.append(name)


async def _fails_when_cancelled(started: asyncio.Event) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        raise RuntimeError("broke while stopping") from None


async def test_a_running_task_is_cancelled_and_has_finished_its_clean_up_on_return() -> None:
    started, cleaned = asyncio.Event(), []
    task = asyncio.create_task(_forever(started, cleaned, "a"))
    await started.wait()
    await cancel_and_wait(task)
    assert task.cancelled()
    assert cleaned == ["a"]


async def test_none_means_no_task_and_a_finished_task_is_left_as_it_was() -> None:
    done = asyncio.create_task(asyncio.sleep(0, result=7))
    await done
    await cancel_and_wait(None, done, None)
    assert done.result() == 7


async def test_every_task_is_cancelled_before_any_is_waited_for() -> None:
    started_a, started_b, cleaned = asyncio.Event(), asyncio.Event(), []
    a = asyncio.create_task(_forever(started_a, cleaned, "a"))
    b = asyncio.create_task(_forever(started_b, cleaned, "b"))
    await started_a.wait()
    await started_b.wait()
    await cancel_and_wait(a, b)
    assert a.cancelled()
    assert b.cancelled()
    assert sorted(cleaned) == ["a", "b"]


async def test_an_error_a_task_ends_with_is_raised() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_fails_when_cancelled(started))
    await started.wait()
    with pytest.raises(RuntimeError, match="broke while stopping"):
        await cancel_and_wait(task)
    assert task.done()


async def test_drop_errors_drops_them_and_waits_for_every_task() -> None:
    started_bad, started_good, cleaned = asyncio.Event(), asyncio.Event(), []
    bad = asyncio.create_task(_fails_when_cancelled(started_bad))
    good = asyncio.create_task(_forever(started_good, cleaned, "good"))
    await started_bad.wait()
    await started_good.wait()
    await cancel_and_wait(bad, good, drop_errors=True)
    assert isinstance(bad.exception(), RuntimeError)
    assert good.cancelled()
    assert cleaned == ["good"]
