"""What the JobQueue clauses share: constants, sample inputs and small helpers."""

from __future__ import annotations

from typing import Any

import pytest

from portfolio_core.ports.job_queue import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    JobQueue,
    NewJob,
    Reservation,
)

BOUND = 10.0
"""Seconds: an upper bound on waits that must end long before it."""
Q = "kit"

BAD_PAYLOADS = [
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param((1, 2), id="tuple"),
    pytest.param({1: "x"}, id="int-key"),
    pytest.param({"a": {1, 2}}, id="set"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(object(), id="object"),
    pytest.param(["a\x00b"], id="nul"),
]

BAD_JOBS = [  # a NewJob with one bad field, and the field the error names
    pytest.param(NewJob(""), "task", id="empty-task"),
    pytest.param(NewJob("t", queue=""), "queue", id="empty-queue"),
    pytest.param(NewJob("t", queue="q" * 129), "queue", id="long-queue"),
    pytest.param(NewJob("t", priority=40000), "priority", id="priority-range"),
    pytest.param(NewJob("t", priority=1.5), "priority", id="priority-float"),  # type: ignore[arg-type]
    pytest.param(NewJob("t", max_attempts=0), "max_attempts", id="no-attempts"),
    pytest.param(NewJob("t", delay=-1), "delay", id="negative-delay"),
    pytest.param(NewJob("t", delay=1, run_at=5), "run_at", id="delay-and-run-at"),
    pytest.param(NewJob("t", run_at=float("nan")), "run_at", id="nan-run-at"),
    pytest.param(NewJob("t", unique_key=""), "unique_key", id="empty-unique-key"),
    pytest.param(NewJob("t", priority=MAX_PRIORITY + 1), "priority", id="priority-above-max"),
    pytest.param(NewJob("t", priority=MIN_PRIORITY - 1), "priority", id="priority-below-min"),
    pytest.param(NewJob("lone \udc80 surrogate"), "task", id="surrogate-task"),
    pytest.param(NewJob("t", queue="q\ud800"), "queue", id="surrogate-queue"),
    pytest.param(NewJob("t", unique_key="\udfff"), "unique_key", id="surrogate-unique-key"),
    pytest.param(NewJob(7), "task", id="task-int"),  # type: ignore[arg-type]
    pytest.param(NewJob("t" * 256), "task", id="long-task"),
    pytest.param(NewJob("t\x00"), "task", id="nul-task"),
    pytest.param(NewJob("t", queue="q\x00"), "queue", id="nul-queue"),
    pytest.param(NewJob("t", unique_key="k" * 256), "unique_key", id="long-unique-key"),
    pytest.param(NewJob("t", unique_key=5), "unique_key", id="unique-key-int"),  # type: ignore[arg-type]
    pytest.param(NewJob("t", priority=True), "priority", id="priority-bool"),
    pytest.param(NewJob("t", max_attempts=True), "max_attempts", id="max-attempts-bool"),
    pytest.param(NewJob("t", max_attempts=2.0), "max_attempts", id="max-attempts-float"),  # type: ignore[arg-type]
    pytest.param(NewJob("t", delay=float("nan")), "delay", id="nan-delay"),
    pytest.param(NewJob("t", delay=float("inf")), "delay", id="inf-delay"),
    pytest.param(NewJob("t", delay=True), "delay", id="bool-delay"),
    pytest.param(NewJob("t", run_at=float("inf")), "run_at", id="inf-run-at"),
    pytest.param(NewJob("t", run_at="5"), "run_at", id="str-run-at"),  # type: ignore[arg-type]
    pytest.param({"task": "t", "queue": "kit"}, "job", id="not-a-new-job"),
]


async def reserve_all(adapter: JobQueue, queue: str = Q, **kw: Any) -> list[Reservation]:
    """Everything ``reserve`` hands out now, in order (repeated until empty)."""
    out: list[Reservation] = []
    while True:
        got = await adapter.reserve(queue, limit=50, **kw)
        if not got:
            return out
        out.extend(got)
