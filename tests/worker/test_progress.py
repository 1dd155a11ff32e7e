"""The worker's status line on a terminal: redrawn in place, marked while stopping, and ended
with a newline when the view stops."""

from __future__ import annotations

import asyncio
import io

import pytest

from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
from portfolio_core.worker import Handlers, Worker
from portfolio_core.worker._progress import ProgressView, render


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_stopping_worker_says_so() -> None:
    worker = Worker(MemoryJobQueue(), Handlers())
    assert not render(worker, None, 0.0).endswith("(stopping)")
    worker.stop()
    assert render(worker, None, 0.0).endswith("  (stopping)")


async def test_on_a_terminal_the_line_is_redrawn_then_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    drawn = asyncio.Event()

    class Watched(Terminal):
        def flush(self) -> None:
            drawn.set()

    out = Watched()
    view = asyncio.ensure_future(
        ProgressView(Worker(MemoryJobQueue(), Handlers()), stream=out, interval=0.001).run()
    )
    async with asyncio.timeout(10):
        await drawn.wait()
    view.cancel()
    with pytest.raises(asyncio.CancelledError):
        await view
    text = out.getvalue()
    assert text.startswith("\rdefault: running 0/4")
    assert text.endswith("\n")
    frames = text[:-1].split("\r")[1:]
    assert frames
    assert all(len(frame) == 59 for frame in frames)
