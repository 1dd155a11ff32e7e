"""Group commit for the SQL event stores: appends that arrive while another is being written
wait in a queue, and the writer commits every waiting append in one transaction.

Each append keeps its own expected-version check, id check and atomicity; its caller is
answered only after the commit that holds its events. The stores decide how a group is
written (SQLite: savepoints in one ``BEGIN IMMEDIATE``; PostgreSQL: one message of
statements); what they share lives here: the size of a group (`next_group`), the
waiting append and how its caller is answered from another thread (`PendingAppend`,
`settle`), and the queue with its writer role and the heuristic that tells a lone
writer from concurrent ones (`AppendQueue`). See
docs/decisions/0014-event-store-group-commit.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from portfolio_core.adapters._shared.event_store.validation import (
    EncodedEvent,
)
from portfolio_core.ports.event_store import ExpectedVersion

Item = TypeVar("Item")
Outcome = tuple[int, tuple[int, ...]] | None
"""What a write decided for one append: ``(version, positions)``, or None ("nothing written:
check ids and version")."""

GROUP_EVENTS = 2048
"""At most this many events are committed in one group (at least one append)."""
SOLO_LIMIT = 8
"""Writer groups of one append in a row after which appends go inline again."""
COMPANY_WINDOW = 0.005
"""Seconds: an append by another task this soon after the last one means concurrency."""


def next_group(queue: list[Item], size: Callable[[Item], int]) -> list[Item]:
    """Remove and return the oldest waiting appends, up to GROUP_EVENTS events (``size``
    counts an append's events) but always at least one while any waits."""
    group: list[Item] = []
    events = 0
    while queue and (not group or events < GROUP_EVENTS):
        group.append(queue.pop(0))
        events += size(group[-1])
    return group


class PendingAppend:
    """One append waiting to be written with its group, and what the writer decided for it."""

    __slots__ = ("batch", "error", "expected", "future", "loop", "result", "stream", "tenant")

    def __init__(
        self,
        tenant: str,
        stream: str,
        batch: list[EncodedEvent],
        expected: ExpectedVersion,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.tenant = tenant
        self.stream = stream
        self.batch = batch
        self.expected = expected
        self.loop = loop
        self.future: asyncio.Future[Outcome] = loop.create_future()
        self.result: Outcome = None
        self.error: BaseException | None = None

    def settle(self) -> None:
        """Hand the outcome to the waiting task (called on its event loop)."""
        if self.future.done():  # the caller was cancelled; the outcome stands regardless
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)


def _events(pending: PendingAppend) -> int:
    return len(pending.batch)


def settle(group: list[PendingAppend]) -> None:
    """Answer every caller of ``group``, from any thread: directly on its own loop, through
    ``call_soon_threadsafe`` on another (a closed loop's caller is gone: skipped)."""
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for pending in group:
        if pending.loop is here:
            pending.settle()
        else:
            with contextlib.suppress(RuntimeError):  # that caller's loop is closed
                pending.loop.call_soon_threadsafe(pending.settle)


class AppendQueue:
    """The appends of one store waiting for a writer, shared by threads and event loops.

    The first append to find no writer at work takes the writer role (`join`); the
    writer takes group after group (`take_group`) and gives the role up in the same
    locked step that finds the queue empty, so an append queued meanwhile is never left
    without a writer. `alone` says whether an append may skip the queue."""

    __slots__ = ("_last_append", "_last_task", "_lock", "_solo_groups", "_waiting", "writer_busy")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[PendingAppend] = []
        self.writer_busy = False
        self._solo_groups = SOLO_LIMIT
        self._last_task = 0
        self._last_append = 0.0

    def join(self, pending: PendingAppend) -> bool:
        """Queue ``pending``; True when its caller takes the writer role."""
        with self._lock:
            self._waiting.append(pending)
            first, self.writer_busy = not self.writer_busy, True
        return first

    def take_group(self) -> list[PendingAppend]:
        """The next group of waiting appends (oldest first); when none is waiting, the
        writer role is given up in the same step, so a newcomer knows to take it."""
        with self._lock:
            group = next_group(self._waiting, _events)
            if not group:
                self.writer_busy = False
        if group:
            self._solo_groups = self._solo_groups + 1 if len(group) == 1 else 0
        return group

    def put_back(self, group: list[PendingAppend]) -> None:
        """Return ``group`` to the front of the queue (the writer keeps its role)."""
        with self._lock:
            self._waiting[:0] = group

    def take_all(self) -> list[PendingAppend]:
        """Empty the queue and free the writer role (the store is closing)."""
        with self._lock:
            left, self._waiting, self.writer_busy = self._waiting, [], False
        return left

    def alone(self) -> bool:
        """Whether this append may run inline at once: no group is being written and no
        other task has appended moments ago (see `appended`)."""
        task = asyncio.current_task()
        me = id(task) if task is not None else 0
        if me != self._last_task:
            if time.monotonic() - self._last_append < COMPANY_WINDOW:
                self._solo_groups = 0
            self._last_task = me
        return self._solo_groups >= SOLO_LIMIT and not self.writer_busy

    def appended(self) -> None:
        """Note the end of an append (inline or grouped), for `alone`."""
        self._last_append = time.monotonic()
