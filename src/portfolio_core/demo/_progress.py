"""A small progress bar on stderr (standard library only).

On a terminal it redraws one line in place; otherwise (a pipe, a CI log) it prints a plain
line at each quarter, so logs stay readable and nothing depends on terminal control codes.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts ``total`` units of work; `advance` after each, `close` at the end."""

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(1, total)
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._tty = enabled and bool(getattr(self._stream, "isatty", lambda: False)())
        self._started = time.perf_counter()
        self._quarter = 0
        self._label = ""
        if self._tty:
            self._draw()

    def label(self, text: str) -> None:
        """Show what is being worked on now (terminal only)."""
        self._label = text
        if self._tty:
            self._draw()

    def advance(self, units: int = 1) -> None:
        self.done = min(self.total, self.done + units)
        if self._tty:
            self._draw()
        elif self._enabled:
            quarter = 4 * self.done // self.total
            if quarter > self._quarter:
                self._quarter = quarter
                elapsed = time.perf_counter() - self._started
                print(
                    f"demo: {self.done}/{self.total} done ({elapsed:.1f} s)",
                    file=self._stream,
                    flush=True,
                )

    def close(self) -> None:
        """Clear the bar (terminal) so the summary starts on a clean line."""
        if self._tty:
            width = shutil.get_terminal_size((80, 20)).columns
            self._stream.write("\r" + " " * (width - 1) + "\r")
            self._stream.flush()

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 20)).columns
        bar_width = 28
        filled = bar_width * self.done // self.total
        bar = "#" * filled + "-" * (bar_width - filled)
        elapsed = time.perf_counter() - self._started
        head = f"[{bar}] {self.done:>3}/{self.total} {elapsed:5.1f}s "
        room = max(0, width - len(head) - 1)
        label = self._label[:room]
        self._stream.write("\r" + head + label.ljust(room))
        self._stream.flush()
