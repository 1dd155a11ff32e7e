"""Health of wired adapters: periodic pings, an overall status, transitions as events.

An adapter offers health by defining ``async def ping(self) -> None`` (raise when unhealthy).
`HealthAggregator` pings every registered adapter concurrently, each within
``timeout`` seconds, keeps the last result per adapter, computes the overall status
(``healthy`` when all are, ``unhealthy`` when none is, ``degraded`` otherwise; ``unknown``
before the first check), and on every change of an adapter's health emits a structured log
line ``health changed`` (not for the first observation, from ``unknown``) and calls the
registered listeners with a `HealthChange`.
Adapters marked by hand (`mark_unhealthy`) stay so until marked healthy.

An adapter wrapped by the boundary with a circuit breaker is judged by its ping *and* its
breaker (`with_breaker`): an open breaker makes it unhealthy even when the ping succeeds.
``ping`` is not a port method: the boundary forwards it unguarded, so a ping is never refused,
limited or counted by protection, and never moves a breaker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from portfolio_core._tasks import cancel_and_wait
from portfolio_core.boundary import boundary_of
from portfolio_core.boundary.telemetry import Telemetry, default_telemetry

__all__ = ["AdapterHealth", "HealthAggregator", "HealthChange", "HealthState", "with_breaker"]

_log = structlog.get_logger("portfolio_core.boundary.health")


class HealthState(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class AdapterHealth:
    """Last known health of one adapter."""

    name: str
    port: str
    state: HealthState
    detail: str = ""
    latency_s: float | None = None
    checked_at: float | None = None  # monotonic seconds
    manual: bool = False


@dataclass(frozen=True, slots=True)
class HealthChange:
    """An adapter's health changed from ``old`` to ``new``."""

    name: str
    port: str
    old: HealthState
    new: HealthState
    detail: str


Listener = Callable[[HealthChange], None]


def with_breaker(adapter: object, healthy: bool, detail: str) -> tuple[bool, str]:
    """``(healthy, detail)`` for ``adapter`` from a ping's verdict, with its boundary circuit
    breaker taken into account (what each breaker state means: ``Breaker.health``).

    An adapter without a boundary breaker, or whose breaker is closed, keeps the ping's
    verdict. Otherwise it is healthy only when the ping and the breaker both say so -- open:
    not healthy, even when the ping succeeded; half-open: healthy, probing -- and the detail
    is the breaker's, followed by ``"; ping: <the ping's detail>"`` when the ping failed.
    Never changes the breaker's state.
    """
    handle = boundary_of(adapter)
    if handle is None or handle.breaker is None:
        return healthy, detail
    breaker_ok, breaker_detail = handle.breaker.health()
    if not breaker_detail:
        return healthy, detail
    if healthy:
        return breaker_ok, breaker_detail
    return False, f"{breaker_detail}; ping: {detail}"


@dataclass
class _Entry:
    port: str
    ping: Callable[[], Awaitable[Any]] | None
    health: AdapterHealth
    adapter: object | None = None
    guarded: bool = False  # wrapped by the boundary with a circuit breaker


class HealthAggregator:
    """See the module docstring. Use `check` for one round, `start` /
    `aclose` for periodic checks every ``interval`` seconds."""

    def __init__(
        self,
        *,
        interval: float = 30.0,
        timeout: float = 5.0,
        telemetry: Telemetry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._telemetry = telemetry or default_telemetry()
        self._telemetry.ensure_instruments()
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, port: str, adapter: object | None = None) -> None:
        """Track ``adapter`` (its ``ping``, when it has one, and its boundary circuit
        breaker, when it is wrapped with one) under ``name``. Without an adapter, ``name`` is
        only fed by `record` (checks made elsewhere)."""
        ping = getattr(adapter, "ping", None) if adapter is not None else None
        known = adapter is not None and not callable(ping)
        handle = boundary_of(adapter)
        self._entries[name] = _Entry(
            port,
            ping if callable(ping) else None,
            AdapterHealth(name, port, HealthState.HEALTHY if known else HealthState.UNKNOWN),
            adapter,
            handle is not None and handle.breaker is not None,
        )

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every `HealthChange` (its errors are logged)."""
        self._listeners.append(listener)

    def _set(self, name: str, health: AdapterHealth) -> None:
        entry = self._entries[name]
        old = entry.health
        entry.health = health
        changed = old.state != health.state
        if health.state in (HealthState.HEALTHY, HealthState.UNHEALTHY):
            self._telemetry.health_checked(
                name, entry.port, health.state is HealthState.HEALTHY, changed
            )
        if not changed:
            return
        change = HealthChange(name, entry.port, old.state, health.state, health.detail)
        if old.state is not HealthState.UNKNOWN:  # a first observation is not logged
            _log.warning(
                "health changed",
                adapter=name,
                port=entry.port,
                old=old.state.value,
                new=health.state.value,
                detail=health.detail,
            )
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                _log.exception("health listener failed", adapter=name)

    def mark_unhealthy(self, name: str, detail: str = "marked unhealthy") -> None:
        """Mark ``name`` unhealthy until `mark_healthy`; pings do not override it."""
        entry = self._entries[name]
        self._set(
            name,
            AdapterHealth(
                name, entry.port, HealthState.UNHEALTHY, detail, None, self._clock(), True
            ),
        )

    def mark_healthy(self, name: str) -> None:
        """Clear a manual mark; ``name`` counts as healthy until its next ping says otherwise."""
        entry = self._entries[name]
        self._set(
            name, AdapterHealth(name, entry.port, HealthState.HEALTHY, "", None, self._clock())
        )

    def record(
        self, name: str, healthy: bool, detail: str = "", latency_s: float | None = None
    ) -> None:
        """Record a check made elsewhere (e.g. by the registry): updates the status, and
        emits a transition when the health changed. ``name`` is added if unknown (port
        ``"unknown"``). A manual mark is not overridden."""
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = _Entry(
                "unknown", None, AdapterHealth(name, "unknown", HealthState.UNKNOWN)
            )
        if entry.health.manual:
            return
        state = HealthState.HEALTHY if healthy else HealthState.UNHEALTHY
        self._set(name, AdapterHealth(name, entry.port, state, detail, latency_s, self._clock()))

    async def _ping_one(self, name: str, entry: _Entry) -> None:
        if entry.health.manual or (entry.ping is None and not entry.guarded):
            return
        start = self._clock()
        healthy, detail = True, ""
        if entry.ping is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    await entry.ping()
            except TimeoutError:
                healthy, detail = False, f"ping timed out after {self.timeout}s"
            except Exception as exc:
                healthy, detail = False, f"{type(exc).__name__}: {exc}"
        healthy, detail = with_breaker(entry.adapter, healthy, detail)
        now = self._clock()
        state = HealthState.HEALTHY if healthy else HealthState.UNHEALTHY
        latency = now - start if entry.ping is not None else None
        self._set(name, AdapterHealth(name, entry.port, state, detail, latency, now))

    async def check(self) -> HealthState:
        """Ping every adapter once, concurrently; returns the overall status."""
        await asyncio.gather(*(self._ping_one(n, e) for n, e in list(self._entries.items())))
        return self.status

    @property
    def status(self) -> HealthState:
        """Overall status from the last results."""
        states = [e.health.state for e in self._entries.values()]
        if not states:
            return HealthState.HEALTHY
        if HealthState.UNKNOWN in states:
            return HealthState.UNKNOWN
        healthy = sum(s is HealthState.HEALTHY for s in states)
        if healthy == len(states):
            return HealthState.HEALTHY
        return HealthState.UNHEALTHY if healthy == 0 else HealthState.DEGRADED

    def snapshot(self) -> dict[str, AdapterHealth]:
        """The last known health of every adapter, by name."""
        return {name: e.health for name, e in self._entries.items()}

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # pragma: no cover - check() catches per adapter
                _log.exception("health check round failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start periodic checks on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Stop periodic checks (idempotent)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
