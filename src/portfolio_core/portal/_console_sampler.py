"""What the console samples while a page is open: health, the boundary's statistics and their
history, the tails of the event stores and the panels; and what each page (each principal)
is sent of them.

The `Sampler` runs only while at least one page is connected (`Sampler.watching`), and
listens to the timeline only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from portfolio_core._tasks import cancel_and_wait
from portfolio_core.boundary import boundary_of
from portfolio_core.boundary.panels import Panel, registered_panels
from portfolio_core.boundary.timeline import TimelineEvent
from portfolio_core.portal._console_events import latest_events
from portfolio_core.portal._security import Principal
from portfolio_core.ports.errors import PortError
from portfolio_core.ports.event_store import EventStore
from portfolio_core.registry import HealthReport

if TYPE_CHECKING:
    from portfolio_core.portal._console import Console

__all__ = ["PANEL_BUDGET", "Sampler"]

_log = structlog.get_logger("portfolio_core.portal.console")

PANEL_BUDGET = 2.0
"""Seconds a panel source may take before it is shown as failing."""


def _protection_of(handle: Any) -> list[str]:
    parts: list[str] = []
    tel = handle.telemetry
    if tel is not None and tel.metrics:
        parts.append("metrics")
    prot = handle.protection
    if prot is not None:
        for name in ("rate_limit", "circuit_breaker", "bulkhead", "timeout", "retry", "fallback"):
            if getattr(prot, name, None) is not None:
                parts.append(name.replace("_", " "))
    return parts


@dataclass
class _Tail:
    """The latest events of one event store, as the page is sent them."""

    entry: str
    events: deque[dict[str, Any]]
    last: int = -1
    error: str = ""


@dataclass
class _PanelState:
    name: str
    entry: str | None
    body: dict[str, Any] = field(default_factory=dict)


class Sampler:
    """Samples the registry for the open pages; runs only while at least one is open."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.watchers = 0
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.version = 0
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self.history: deque[tuple[float, dict[str, tuple[int, int, int]]]] = deque(
            maxlen=console.config.history
        )
        self.methods: list[dict[str, Any]] = []
        self.health: HealthReport | None = None
        self._health_at = 0.0
        self._health_due = True
        self._panels_at = 0.0
        self.tails: dict[str, _Tail] = {}
        self.panels: dict[str, _PanelState] = {}

    # -- lifecycle: first watcher starts it, last one stops it ------------------------------

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        self.watchers += 1
        if self.task is None or self.task.done():
            self.loop = asyncio.get_running_loop()
            self._changed = asyncio.Event()
            self._wake = asyncio.Event()
            self._health_due = True
            self._panels_at = 0.0  # a new session samples every source at once
            self.console.timeline.add_listener(self._on_timeline)
            self.task = self.loop.create_task(self._run(), name="portfolio-core console")
            # the first sample is taken before the page is sent its state
            await self.sample()
        try:
            yield
        finally:
            self.watchers -= 1
            if self.watchers == 0:
                await self.stop()

    async def stop(self) -> None:
        self.console.timeline.remove_listener(self._on_timeline)
        task, self.task = self.task, None
        # forgotten before waiting: a page connecting meanwhile starts afresh
        self.tails.clear()
        self.history.clear()
        self.panels.clear()
        await cancel_and_wait(task)

    def _on_timeline(self, event: TimelineEvent) -> None:
        # called from whichever thread published; breaker moves and reloads re-check health
        loop = self.loop
        if loop is None:
            return
        urgent = event.kind in ("breaker", "reload")
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._poke, urgent)

    def _poke(self, urgent: bool) -> None:
        if urgent:
            self._health_due = True
        self._wake.set()

    async def changed(self, version: int, timeout: float) -> bool:
        """Wait until a sample newer than ``version`` exists (False after ``timeout``)."""
        if self.version != version:
            return True
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
        return self.version != version

    async def _run(self) -> None:
        interval = self.console.config.interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sample()
            except Exception:  # pragma: no cover - every part catches its own errors
                _log.exception("console sample failed")

    # -- one sample ----------------------------------------------------------------------

    async def sample(self) -> None:
        now = time.time()
        config = self.console.config
        if self._health_due or now - self._health_at >= config.health_interval:
            self._health_due = False
            self._health_at = now
            try:
                self.health = await self.console.registry.health(timeout=2.0)
            except Exception as exc:  # pragma: no cover - health() catches per entry
                _log.warning("console health check failed", error=type(exc).__name__)
        registry = self.console.registry
        self.methods = [
            {
                "key": f"{p.adapter}.{p.method}",
                "entry": p.adapter,
                "port": p.port,
                "method": p.method,
                "calls": p.calls,
                "errors": p.errors,
                "rejected": p.rejected,
                "p50": p.p50,
                "p95": p.p95,
                "p99": p.p99,
            }
            for p in registry.performance()
        ]
        self.history.append(
            (now, {m["key"]: (m["calls"], m["errors"], m["rejected"]) for m in self.methods})
        )
        await self._sample_tails()
        if now - self._panels_at >= max(1.0, config.interval):
            self._panels_at = now
            await self._sample_panels()
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _sample_tails(self) -> None:
        registry = self.console.registry
        limit = self.console.config.tail
        names = registry.names(EventStore)
        for gone in set(self.tails) - set(names):
            del self.tails[gone]
        for name in names:
            tail = self.tails.get(name)
            if tail is None:
                tail = self.tails[name] = _Tail(name, deque(maxlen=limit))
            store = self.console.store(name)
            try:
                fresh = tail.last < 0
                if not fresh:
                    found = await store.read_all(tail.last + 1, limit * 4)
                    fresh = len(found) == limit * 4  # far behind: jump to the latest
                if fresh:
                    found, head, _ = await latest_events(store, limit=limit)
                    tail.events.clear()
                    tail.last = max(tail.last, head)
                tail.error = ""
            except Exception as exc:
                tail.error = self.console.registry.redact(
                    f"{type(exc).__name__}: {exc}"
                    if isinstance(exc, PortError)
                    else type(exc).__name__
                )
                continue
            for event in found:
                tail.events.append(self.console.render(event))
                tail.last = max(tail.last, event.position)

    async def _sample_panels(self) -> None:
        registry = self.console.registry
        sources = {**self.console.sources.sources(registry), **registered_panels()}
        for gone in set(self.panels) - set(sources):
            del self.panels[gone]
        for name, source in sources.items():
            state = self.panels.setdefault(name, _PanelState(name, None))
            try:
                async with asyncio.timeout(PANEL_BUDGET):
                    result = source(registry)
                    if inspect.isawaitable(result):
                        result = await result
                if not isinstance(result, Panel):
                    raise TypeError(
                        f"the panel source returned {type(result).__name__}, not a Panel"
                    )
                state.entry = result.entry
                state.body = {
                    "name": name,
                    "title": result.title,
                    "columns": [str(c) for c in result.columns][:50],
                    "rows": [
                        [
                            c if isinstance(c, int | float | bool) or c is None else str(c)
                            for c in row
                        ][:50]
                        for row in list(result.rows)[:500]
                    ],
                    "status": result.status,
                    "note": result.note,
                    "entry": result.entry,
                }
            except Exception as exc:
                reason = "took too long" if isinstance(exc, TimeoutError) else type(exc).__name__
                state.body = {
                    "name": name,
                    "title": name,
                    "columns": [],
                    "rows": [],
                    "status": "error",
                    "note": registry.redact(f"the panel source failed: {reason}: {exc}"),
                    "entry": state.entry,
                }

    # -- what one page is sent -------------------------------------------------------------

    def entries(self, principal: Principal) -> list[dict[str, Any]]:
        registry = self.console.registry
        report = self.health
        out = []
        now = time.time()
        for name in registry.names():
            if not principal.sees(name):
                continue
            info = registry.metadata(name)
            adapter = registry.get(info.port.protocol, name)
            handle = boundary_of(adapter)
            breaker: dict[str, Any] | None = None
            if handle is not None and handle.breaker is not None:
                remaining = handle.breaker.refusing_for()
                _ok, detail = handle.breaker.health()
                breaker = {
                    "state": handle.breaker.state,
                    "refuses_until": now + remaining if remaining else None,
                    "detail": detail,
                    "can_reset": principal.allows(name, "reset_breaker", False),
                }
            health = report.entries.get(name) if report is not None else None
            stats = registry.stats(name)
            out.append(
                {
                    "name": name,
                    "port": info.port.key,
                    "port_name": info.port.name,
                    "adapter": info.adapter_type,
                    "class": f"{info.adapter_class.__module__}.{info.adapter_class.__qualname__}",
                    "default": info.default,
                    "capabilities": sorted(registry.capabilities(name)),
                    "location": info.location,
                    "uses": dict(info.uses),
                    "boundary": _protection_of(handle) if handle is not None else [],
                    "healthy": None if health is None else health.healthy,
                    "detail": "" if health is None else health.detail,
                    "marked": False if health is None else health.marked,
                    "breaker": breaker,
                    "calls": None if stats is None else stats.calls,
                    "errors": None if stats is None else stats.errors,
                }
            )
        return out

    def visible_methods(self, principal: Principal) -> list[dict[str, Any]]:
        return [m for m in self.methods if principal.sees(m["entry"])]

    def history_for(self, principal: Principal) -> dict[str, Any]:
        times = [t for t, _ in self.history]
        series: dict[str, list[list[int] | None]] = {}
        for m in self.visible_methods(principal):
            key = m["key"]
            series[key] = [
                list(sample[key]) if key in sample else None for _, sample in self.history
            ]
        return {"times": times, "series": series}

    def tails_for(self, principal: Principal, after: Mapping[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, tail in self.tails.items():
            if not principal.sees(name):
                continue
            last = after.get(name, -1)
            events = [e for e in tail.events if e["position"] > last]
            out[name] = {"events": events, "error": tail.error, "last": tail.last}
        return out

    def panels_for(self, principal: Principal) -> list[dict[str, Any]]:
        return [
            p.body
            for p in self.panels.values()
            if p.body and (p.entry is None or principal.sees(p.entry))
        ]
