"""The portal's Prometheus metrics, in a registry of its own (``/metrics``)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from portfolio_core.portal._dispatch import Bound

__all__ = ["PortalMetrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _MethodStats:
    __slots__ = ("errors", "ok", "seconds")

    def __init__(self, ok: Any, errors: Counter, seconds: Any) -> None:
        self.ok = ok
        self.errors = errors
        self.seconds = seconds


class PortalMetrics:
    """Calls per entry, method and outcome; call latency; open connections and streams."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter(
            "portfolio_portal_calls",
            "Calls served, by entry, method and outcome (ok or the problem type's slug).",
            ("entry", "method", "outcome"),
            registry=self.registry,
        )
        self.seconds = Histogram(
            "portfolio_portal_call_seconds",
            "Time to serve a call (for iterations: to open them), by entry and method.",
            ("entry", "method"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.refused = Counter(
            "portfolio_portal_refused",
            "Requests refused before reaching an entry, by reason.",
            ("reason",),
            registry=self.registry,
        )
        self.websockets = Gauge(
            "portfolio_portal_websockets",
            "Open WebSocket connections.",
            registry=self.registry,
        )
        self.channels = Gauge(
            "portfolio_portal_open_channels",
            "Open iterations and subscriptions (HTTP streams and WebSocket channels).",
            registry=self.registry,
        )
        self.buffered = Gauge(
            "portfolio_portal_buffered_items",
            "Items the server holds for WebSocket clients that have not been sent yet.",
            registry=self.registry,
        )

    def attach(self, bound: Bound) -> None:
        entry, method = bound.entry, bound.spec.name
        bound.stats = _MethodStats(
            self.calls.labels(entry, method, "ok"),
            self.calls,
            self.seconds.labels(entry, method),
        )

    def record(self, bound: Bound, seconds: float, outcome: str | None) -> None:
        stats: _MethodStats = bound.stats
        if outcome is None:
            stats.ok.inc()
        else:
            stats.errors.labels(bound.entry, bound.spec.name, outcome).inc()
        stats.seconds.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
