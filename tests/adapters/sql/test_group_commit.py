"""The group-commit queue the SQL event stores share: groups are bounded by events but
never empty, the writer role passes to exactly one append, and is given up in the step that
finds the queue empty."""

from __future__ import annotations

import asyncio

import pytest

from portfolio_core.adapters._shared.event_store.validation import EncodedEvent
from portfolio_core.adapters.sql._group_commit import (
    GROUP_EVENTS,
    SOLO_LIMIT,
    AppendQueue,
    PendingAppend,
    next_group,
    settle,
)
from portfolio_core.ports.event_store import StreamState


def _batch(n: int) -> list[EncodedEvent]:
    return [EncodedEvent(f"id-{k}", "E", "{}", "{}", None, None) for k in range(n)]


def _pending(loop: asyncio.AbstractEventLoop, events: int = 1) -> PendingAppend:
    return PendingAppend("", "s", _batch(events), StreamState.ANY, loop)


def test_a_group_stops_at_the_event_limit_but_holds_at_least_one_append() -> None:
    queue = [GROUP_EVENTS * 2, 1, 1]
    assert next_group(queue, lambda n: n) == [GROUP_EVENTS * 2]
    half = GROUP_EVENTS // 2
    queue = [half, half, 1]
    assert next_group(queue, lambda n: n) == [half, half]
    assert queue == [1]
    assert next_group([], lambda n: n) == []


async def test_the_first_append_takes_the_writer_role_and_gives_it_up_when_empty() -> None:
    loop = asyncio.get_running_loop()
    queue = AppendQueue()
    first, second = _pending(loop), _pending(loop)
    assert queue.join(first) is True
    assert queue.join(second) is False
    assert queue.take_group() == [first, second]
    assert queue.writer_busy
    assert queue.take_group() == []
    assert not queue.writer_busy
    assert queue.join(_pending(loop)) is True


async def test_put_back_keeps_order_and_take_all_frees_the_role() -> None:
    loop = asyncio.get_running_loop()
    queue = AppendQueue()
    a, b, c = _pending(loop), _pending(loop), _pending(loop)
    queue.join(a)
    queue.join(b)
    group = queue.take_group()
    queue.join(c)
    queue.put_back(group)
    assert queue.take_all() == [a, b, c]
    assert not queue.writer_busy


async def test_an_append_by_another_task_moments_later_means_company() -> None:
    queue = AppendQueue()
    assert queue.alone()  # starts inline
    queue.appended()

    async def other() -> bool:
        return queue.alone()

    assert await asyncio.create_task(other()) is False
    assert not queue.alone()  # grouped until SOLO_LIMIT lone groups in a row
    loop = asyncio.get_running_loop()
    for _ in range(SOLO_LIMIT):
        queue.join(_pending(loop))
        assert len(queue.take_group()) == 1
        queue.take_group()
    assert queue.alone()


async def test_settle_answers_each_caller_with_its_outcome_or_error() -> None:
    loop = asyncio.get_running_loop()
    ok, failed, cancelled = _pending(loop), _pending(loop), _pending(loop)
    ok.result = (3, (7, 8, 9))
    failed.error = RuntimeError("refused")
    cancelled.future.cancel()
    settle([ok, failed, cancelled])
    assert await ok.future == (3, (7, 8, 9))
    with pytest.raises(RuntimeError, match="refused"):
        await failed.future
    assert cancelled.future.cancelled()
