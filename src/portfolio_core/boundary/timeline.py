"""The operational timeline: what happened to the wiring, as a bounded feed of events.

The boundary publishes circuit-breaker transitions, fallbacks and rejections (rate limit,
open circuit, bulkhead); the registry publishes reloads with the manifest diff. Any other
part of an application -- a job queue, a runtime-config store, an outbox, a projection
runner -- publishes its own kinds with `publish`; the operator console shows them all
in one timeline, live, with no code of its own for them.

Guarantees:

* publishing never raises and never blocks on a reader: it appends to a ring buffer (the
  last ``capacity`` events) under a lock held for a few operations, then calls the
  listeners, whose errors are swallowed;
* with no listener, `publish` costs one lock round and one append; nothing is done on
  a port call that succeeds (only transitions, fallbacks and refusals publish);
* events published under one ``coalesce`` key within ``COALESCE_SECONDS`` of the previous
  one update that event (its ``count``, time and detail) instead of adding another, so a
  flood of refusals is one line of the timeline, not thousands;
* ids increase strictly; `Timeline.since` returns the events (new or updated) after a
  given id, so a reader never misses one it has not been told about, as long as it reads
  before ``capacity`` newer ones arrive.

Nothing here imports more than the standard library: every layer may publish.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = [
    "COALESCE_SECONDS",
    "Severity",
    "Timeline",
    "TimelineEvent",
    "default_timeline",
    "publish",
    "publish_fallback",
    "publish_transition",
]

Severity = Literal["info", "warning", "error"]
COALESCE_SECONDS = 5.0
"""Events with the same ``coalesce`` key closer together than this are merged into one."""
_MAX_TEXT = 2000


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One thing that happened.

    ``kind`` names the source (``breaker``, ``fallback``, ``rejection``, ``reload``, or any
    dotted name of your own such as ``jobs.dead_letter``); ``entry`` the registry entry it
    concerns (``None``: the process as a whole); ``title`` is one short line and ``detail``
    more text; ``data`` is a JSON-compatible mapping for the console to show (a reload's
    diff, a queue's counts). ``time`` is seconds since the epoch; ``count`` how many
    occurrences were coalesced into this event. Texts are cut to 2,000 characters.
    """

    id: int
    kind: str
    title: str
    time: float
    entry: str | None = None
    severity: Severity = "info"
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    count: int = 1


Listener = Callable[[TimelineEvent], None]


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


class Timeline:
    """A bounded, thread-safe feed of `TimelineEvent` (see the module docstring)."""

    def __init__(self, capacity: int = 1000, *, clock: Callable[[], float] = time.time) -> None:
        if capacity < 1:
            raise ValueError("a timeline keeps at least one event")
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._events: deque[TimelineEvent] = deque(maxlen=capacity)
        self._last_id = 0
        self._coalesced: dict[Hashable, TimelineEvent] = {}
        self._superseded: set[int] = set()
        self._listeners: list[Listener] = []

    def publish(
        self,
        kind: str,
        title: str,
        *,
        entry: str | None = None,
        severity: Severity = "info",
        detail: str = "",
        data: Mapping[str, Any] | None = None,
        coalesce: Hashable | None = None,
    ) -> TimelineEvent:
        """Add an event (or update the one of the same ``coalesce`` key, see the module
        docstring) and tell the listeners; returns the event as stored. Never raises for a
        listener's error."""
        now = self._clock()
        with self._lock:
            self._last_id += 1
            previous = self._coalesced.get(coalesce) if coalesce is not None else None
            if previous is not None and now - previous.time < COALESCE_SECONDS:
                event = replace(
                    previous,
                    id=self._last_id,
                    time=now,
                    title=_cut(title),
                    detail=_cut(detail),
                    count=previous.count + 1,
                )
                if self._events and self._events[-1] is previous:
                    self._events.pop()
                else:  # hidden from readers until it leaves the ring
                    self._superseded.add(previous.id)
            else:
                event = TimelineEvent(
                    self._last_id,
                    kind,
                    _cut(title),
                    now,
                    entry,
                    severity,
                    _cut(detail),
                    dict(data or {}),
                )
            if len(self._events) == self.capacity:
                self._superseded.discard(self._events[0].id)
            self._events.append(event)
            if coalesce is not None:
                if len(self._coalesced) >= 4 * self.capacity:
                    self._coalesced.clear()
                self._coalesced[coalesce] = event
            listeners = self._listeners
        for listener in listeners:
            with contextlib.suppress(Exception):  # a listener never breaks the publisher
                listener(event)
        return event

    def since(self, after: int = 0) -> list[TimelineEvent]:
        """The events with an id greater than ``after``, oldest first."""
        with self._lock:
            if not self._events or self._events[-1].id <= after:
                return []
            hidden = self._superseded
            return [e for e in self._events if e.id > after and e.id not in hidden]

    def latest(self, limit: int | None = None) -> list[TimelineEvent]:
        """The last ``limit`` events (all kept ones by default), oldest first."""
        with self._lock:
            hidden = self._superseded
            events = [e for e in self._events if e.id not in hidden]
        return events if limit is None else events[-limit:] if limit > 0 else []

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before any)."""
        return self._last_id

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every event published from now on (from the publishing
        thread: hand the work to your own loop or thread if it may take time)."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (no error when it was not added)."""
        with self._lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def clear(self) -> None:
        """Forget every event (ids keep increasing)."""
        with self._lock:
            self._events.clear()
            self._coalesced.clear()
            self._superseded.clear()


_DEFAULT = Timeline()


def default_timeline() -> Timeline:
    """The process-wide timeline the boundary, the registry and the console use."""
    return _DEFAULT


publish = _DEFAULT.publish
"""Publish to the process-wide timeline (`Timeline.publish` of `default_timeline`)."""


def publish_transition(port: str, name: str, old: str, new: str) -> None:
    """Publish a circuit breaker's transition of entry ``name`` (the boundary calls this)."""
    if old == new:
        return
    severity: Severity = "error" if new == "open" else "warning" if new == "half-open" else "info"
    publish(
        "breaker",
        f"circuit breaker of {name!r}: {old} -> {new}",
        entry=name,
        severity=severity,
        data={"port": port, "from": old, "to": new},
    )


def publish_fallback(port: str, name: str, method: str, exc: BaseException) -> None:
    """Publish that entry ``name`` fell back on ``port.method`` after ``exc`` (coalesced)."""
    publish(
        "fallback",
        f"{name!r} fell back on {port}.{method}",
        entry=name,
        severity="warning",
        detail=f"after {type(exc).__name__}",
        data={"port": port, "method": method, "error": type(exc).__name__},
        coalesce=("fallback", port, name, method),
    )
