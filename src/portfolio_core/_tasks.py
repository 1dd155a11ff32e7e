"""Stopping background tasks: the one way every long-lived object here ends its own task.

Health checkers, the router's health loop, projection runners, flag watchers, the hot
reloader and the portal's console sampler each own a task that runs until they are closed;
closing cancels it and waits until it has finished, so nothing of it runs afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None, drop_errors: bool = False) -> None:
    """Cancel every task given, then wait for each in turn until it is done.

    ``None`` stands for "no task" and is skipped. Guaranteed on return: every task given is
    done. A task's cancellation is never raised here. With ``drop_errors=False`` an exception
    a task ended with (other than its cancellation) is raised, and tasks after it are left
    cancelled but not waited for; with ``drop_errors=True`` such exceptions are dropped and
    every task is waited for.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    dropped: tuple[type[BaseException], ...] = (
        (asyncio.CancelledError, Exception) if drop_errors else (asyncio.CancelledError,)
    )
    for task in running:
        with contextlib.suppress(*dropped):
            await task
