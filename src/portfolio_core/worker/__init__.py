"""The worker runtime: handlers by task name, the worker loop and periodic jobs.

``portfolio-core worker MANIFEST --queue NAME --concurrency N`` wires the manifest, takes its
JobQueue and runs `Worker` until SIGTERM; see docs/worker.md.
"""

from __future__ import annotations

from portfolio_core.worker._cron import CronSchedule, Periodic
from portfolio_core.worker._handlers import Handler, Handlers, default_handlers, task
from portfolio_core.worker._worker import Worker, WorkerStats

__all__ = [
    "CronSchedule",
    "Handler",
    "Handlers",
    "Periodic",
    "Worker",
    "WorkerStats",
    "default_handlers",
    "task",
]
