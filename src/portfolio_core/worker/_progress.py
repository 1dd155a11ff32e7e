"""A one-line progress view of a running worker on stderr (standard library only)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from typing import TextIO

from portfolio_core.ports.errors import PortError
from portfolio_core.ports.job_queue import JobCounts
from portfolio_core.worker._worker import Worker

__all__ = ["ProgressView", "render"]


def render(worker: Worker, counts: JobCounts | None, rate: float) -> str:
    """The status line: what this worker did and what its queue holds."""
    s = worker.stats
    line = (
        f"{worker.queue_name}: running {s.running}/{worker.concurrency}  done {s.completed}  "
        f"failed {s.failed}  dead {s.dead}  {rate:.1f} jobs/s"
    )
    if counts is not None:
        line += (
            f"  | queue: available {counts.available}  scheduled {counts.scheduled}  "
            f"running {counts.running}  dead {counts.dead}"
        )
    if worker.stopping:
        line += "  (stopping)"
    return line


class ProgressView:
    """Redraws the status line every ``interval`` seconds on a terminal; elsewhere prints a
    plain line every ``interval * 10`` seconds so logs stay readable."""

    def __init__(self, worker: Worker, *, stream: TextIO | None = None, interval: float = 0.5):
        self.worker = worker
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    async def run(self) -> None:
        last_done, last_time, ticks = 0, time.perf_counter(), 0
        try:
            while True:
                await asyncio.sleep(self.interval)
                ticks += 1
                counts = None
                with contextlib.suppress(PortError):
                    counts = await self.worker.queue.counts(self.worker.queue_name)
                now = time.perf_counter()
                done = self.worker.stats.completed + self.worker.stats.failed
                rate = (done - last_done) / max(now - last_time, 1e-9)
                last_done, last_time = done, now
                line = render(self.worker, counts, rate)
                if self.tty:
                    width = shutil.get_terminal_size((100, 20)).columns
                    self.stream.write("\r" + line[: width - 1].ljust(width - 1))
                    self.stream.flush()
                elif ticks % 10 == 0:
                    print(line, file=self.stream, flush=True)
        finally:
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
