"""MemoryJobQueue: the JobQueue contract suite (the reference adapter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
from portfolio_core.testing.contracts.job_queue import JobQueueContract


class TestMemoryJobQueueContract(JobQueueContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[..., Any]:
        def make(
            *, clock: Callable[[], float], faults: Callable[[str], None] | None = None
        ) -> MemoryJobQueue:
            return MemoryJobQueue(clock=clock, faults=faults, poll_interval=0.01)

        return make
