"""What the ConfigStore clauses share: constants, sample inputs and small helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.ports.config_store import (
    ChangeSet,
)

WAIT = 10.0


class KitLimits(BaseModel):
    """The schema the kit registers for the prefix ``limits.`` (by reference, as a manifest
    does)."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(gt=0)
    retries: int = Field(0, ge=0)


KIT_SCHEMAS = {"limits.": "portfolio_core.testing.contracts.config_store:KitLimits"}


async def next_change_set(watcher: AsyncIterator[ChangeSet], timeout: float = WAIT) -> ChangeSet:
    return await asyncio.wait_for(anext(watcher), timeout)


async def nothing_pending(watcher: AsyncIterator[ChangeSet]) -> None:
    """Fail if ``watcher`` delivers anything within a short while."""
    task = asyncio.ensure_future(anext(watcher))
    done, _ = await asyncio.wait({task}, timeout=0.1)
    if done:
        raise AssertionError(f"the watcher delivered an unexpected change set: {task.result()}")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await task
