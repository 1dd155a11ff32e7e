"""A task a clause starts beside its own steps, whose outcome is never left unobserved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

T = TypeVar("T")


@contextlib.asynccontextmanager
async def in_background(awaitable: Awaitable[T]) -> AsyncIterator[asyncio.Future[T]]:
    """Run ``awaitable`` as a task while the body runs; the body awaits it for its result.

    On exit (the body returned or raised) a task still running is cancelled and waited for,
    and the outcome of the task is retrieved either way: an error the body never awaited
    (it failed first, say) is dropped with the task instead of being logged later by
    asyncio as "exception was never retrieved", long after the clause it belongs to.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # marks it retrieved; the body reported what matters
