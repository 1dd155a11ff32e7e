"""Closing a PostgreSQL adapter stops its LISTEN task: the task is cancelled and awaited, and
what it ends with never escapes into ``aclose``."""

from __future__ import annotations

import asyncio

from portfolio_core.adapters.sql._connections import stop_listening


async def test_a_running_listener_is_cancelled_and_has_ended() -> None:
    async def listen() -> None:
        await asyncio.sleep(3600)

    task = asyncio.get_running_loop().create_task(listen())
    await asyncio.sleep(0)
    await stop_listening(task)
    assert task.done()
    assert task.cancelled()


async def test_a_listener_that_failed_does_not_fail_the_close() -> None:
    async def listen() -> None:
        raise ConnectionError("server went away")

    task = asyncio.get_running_loop().create_task(listen())
    await asyncio.sleep(0)
    await stop_listening(task)
    assert isinstance(task.exception(), ConnectionError)
