"""A clause that starts a task beside its own steps (a writer waiting on a full sink, a
reader waiting for a message) and then fails leaves nothing behind: the task is cancelled
and its outcome retrieved, so asyncio never reports "exception was never retrieved" later,
in the middle of another test."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from portfolio_core.testing import LoopRunner
from portfolio_core.testing._background import in_background
from portfolio_core.testing.contracts.stream import StreamContract
from tests.testing.broken.stream import FollowingGroupReadFails


def _watch(runner: LoopRunner) -> list[str]:
    reported: list[str] = []

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(str(context.get("message")))

    runner.loop.set_exception_handler(handler)
    return reported


def test_a_failing_backpressure_clause_leaves_no_waiting_writer() -> None:
    with LoopRunner(timeout=30) as runner:
        reported = _watch(runner)
        with pytest.raises(RuntimeError, match="the group read failed"):
            StreamContract().test_backpressure_resumes(
                FollowingGroupReadFails(),
                kit_runner=runner,  # type: ignore[call-arg]
            )
        left = [t for t in asyncio.all_tasks(runner.loop) if not t.done()]
        assert left == [], f"tasks still running after the clause failed: {left}"
    gc.collect()
    assert reported == []


async def _fails_soon() -> None:
    await asyncio.sleep(0)
    raise ValueError("the background task failed")


def test_an_error_the_body_never_awaited_is_not_reported_later() -> None:
    with LoopRunner() as runner:
        reported = _watch(runner)

        async def body() -> None:
            async with in_background(_fails_soon()) as task:
                await asyncio.sleep(0.01)
                assert task.done()
                raise AssertionError("the clause failed first")

        with pytest.raises(AssertionError, match="the clause failed first"):
            runner.run(body())
        gc.collect()
    assert reported == []


def test_a_task_still_running_when_the_body_ends_is_cancelled() -> None:
    started = asyncio.Event()

    async def body() -> asyncio.Future[None]:
        async with in_background(asyncio.sleep(60)) as task:
            await asyncio.sleep(0)
            started.set()
        return task

    with LoopRunner() as runner:
        task = runner.run(body())
    assert started.is_set()
    assert task.cancelled()


def test_the_body_gets_the_result_of_the_task() -> None:
    async def body() -> int:
        async def answer() -> int:
            return 42

        async with in_background(answer()) as task:
            return await task

    with LoopRunner() as runner:
        assert runner.run(body()) == 42
