"""SQLiteJobQueue: the JobQueue contract suite on a file, and jobs surviving a reopen."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.sql.sqlite_job_queue import SQLiteJobQueue
from portfolio_core.ports import JobState, NewJob
from portfolio_core.testing.contracts.job_queue import JobQueueContract


class TestSQLiteJobQueueContract(JobQueueContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[..., Any]:
        numbers = itertools.count()

        def make(*, clock: Callable[[], float]) -> SQLiteJobQueue:
            return SQLiteJobQueue(
                tmp_path / f"jobs{next(numbers)}.db", clock=clock, poll_interval=0.01
            )

        return make


async def test_jobs_survive_a_reopen(tmp_path: Path) -> None:
    first = SQLiteJobQueue(tmp_path / "jobs.db")
    job_id = await first.enqueue(NewJob("send", {"to": "x"}))
    (held,) = await first.reserve("default")
    done = await first.enqueue(NewJob("other"))
    await first.aclose()
    second = SQLiteJobQueue(tmp_path / "jobs.db")
    try:
        assert (await second.get(job_id)).state is JobState.RUNNING
        await second.complete(held)
        assert (await second.get(job_id)).state is JobState.COMPLETED
        assert [r.id for r in await second.reserve("default")] == [done]
    finally:
        await second.aclose()
