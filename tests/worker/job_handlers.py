"""Handlers the worker-process tests run (imported by ``portfolio-core worker --import``).

Each records what it did in files under the directory its payload names, with O_APPEND
writes, so several processes can record into one file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from portfolio_core.ports import Job
from portfolio_core.worker import task


def _record(directory: str, name: str, line: str) -> None:
    fd = os.open(Path(directory) / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@task("record")
async def record(payload: dict[str, Any], job: Job) -> None:
    """Append ``job.id`` to ``ran`` (and this process's pid to ``pids``)."""
    _record(payload["dir"], "ran", job.id)
    _record(payload["dir"], "pids", str(os.getpid()))


@task("slow")
async def slow(payload: dict[str, Any], job: Job) -> None:
    """Record the start of each attempt, then sleep ``payload['seconds']`` (only in attempt
    ``payload['only_attempt']`` when given) and record the end."""
    _record(payload["dir"], "started", f"{job.id} {job.attempts}")
    if payload.get("only_attempt", job.attempts) == job.attempts:
        await asyncio.sleep(payload["seconds"])
    _record(payload["dir"], "finished", f"{job.id} {job.attempts}")
