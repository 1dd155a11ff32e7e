"""Cheap in-process aggregation of calls at the boundary.

Every wrapped method owns one `MethodStats`. Recording a call is a few integer
additions, one ``bisect`` into fixed histogram buckets and one store into a ring buffer of
recent durations: no lock, no allocation, no OpenTelemetry call. Exporters read these numbers
when they collect (observable instruments), and `PerformanceMonitor` computes
percentiles from the ring buffers on demand.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from portfolio_core.boundary.timeline import publish

__all__ = [
    "DURATION_BUCKETS",
    "BoundedLabels",
    "MethodStats",
    "PerformanceMonitor",
    "MethodPerformance",
    "all_stats",
]

#: Upper bounds (seconds) of the duration histogram; a last, open bucket catches the rest.
DURATION_BUCKETS: tuple[float, ...] = (
    0.000_01,
    0.000_05,
    0.000_1,
    0.000_5,
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

_RING = 1024  # recent durations kept per method for percentiles (a power of two)
OTHER = "_other"


class BoundedLabels:
    """Guards label cardinality: the first ``limit`` distinct values pass, later ones become
    ``"_other"``. Thread-safe enough: a race may admit one value too many, never unbounded."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        seen = self._seen
        if value in seen:
            return value
        if len(seen) >= self._limit:
            return OTHER
        seen.add(value)
        return value


class MethodStats:
    """Counters of one method of one wrapped adapter.

    Updates take no lock: exact within one event loop or thread; under heavy multi-threaded
    use of one sync proxy a concurrent increment may rarely be lost (never corrupted).

    ``outcome`` of a call is one of ``ok``, ``error``, ``rejected`` (refused by protection
    before reaching the adapter) or ``cancelled``; errors and rejections are also counted per
    bounded error type.
    """

    __slots__ = (
        "__weakref__",
        "adapter",
        "buckets",
        "calls",
        "cancelled",
        "duration_sum",
        "errors",
        "errors_by_type",
        "labels",
        "method",
        "port",
        "rejected",
        "rejected_by_reason",
        "ring",
        "ring_index",
    )

    def __init__(self, port: str, adapter: str, method: str, labels: BoundedLabels) -> None:
        self.port = port
        self.adapter = adapter
        self.method = method
        self.labels = labels
        self.calls = 0
        self.errors = 0
        self.rejected = 0
        self.cancelled = 0
        self.duration_sum = 0.0
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.ring = [0.0] * _RING
        self.ring_index = 0
        self.errors_by_type: dict[str, int] = {}
        self.rejected_by_reason: dict[str, int] = {}
        _register(self)

    def record(self, seconds: float) -> None:
        """One call finished (successfully or not) after ``seconds``."""
        self.calls += 1
        self.duration_sum += seconds
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        i = self.ring_index
        self.ring[i & (_RING - 1)] = seconds
        self.ring_index = i + 1

    def record_error(self, seconds: float, exc: BaseException) -> None:
        self.record(seconds)
        self.errors += 1
        name = self.labels(type(exc).__name__)
        self.errors_by_type[name] = self.errors_by_type.get(name, 0) + 1

    def record_cancelled(self, seconds: float) -> None:
        self.record(seconds)
        self.cancelled += 1

    def record_rejected(self, reason: str) -> None:
        """Protection refused the call (``rate_limit``, ``circuit_open``, ``bulkhead``,
        ``storage``); the adapter was not called."""
        self.rejected += 1
        n = self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        publish(
            "rejection",
            f"{self.adapter!r} refused {self.port}.{self.method}: {reason.replace('_', ' ')}",
            entry=self.adapter,
            severity="warning",
            detail=f"{n} refused for this reason since start",
            data={"port": self.port, "method": self.method, "reason": reason},
            coalesce=("rejection", self.port, self.adapter, self.method, reason),
        )

    def recent(self) -> list[float]:
        """The recent durations (up to the last 1024), oldest first not guaranteed."""
        n = min(self.ring_index, _RING)
        return self.ring[:n]


_ALL: weakref.WeakSet[MethodStats] = weakref.WeakSet()
_ALL_LOCK = threading.Lock()


def _register(stats: MethodStats) -> None:
    with _ALL_LOCK:
        _ALL.add(stats)


def all_stats() -> list[MethodStats]:
    """Every live `MethodStats` in the process (wrapped adapters still referenced)."""
    with _ALL_LOCK:
        return list(_ALL)


@dataclass(frozen=True, slots=True)
class MethodPerformance:
    """Latency percentiles (seconds, over recent calls) and totals of one method."""

    port: str
    adapter: str
    method: str
    calls: int
    errors: int
    rejected: int
    p50: float
    p95: float
    p99: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class PerformanceMonitor:
    """p50/p95/p99 latency and error rate per port method, from the boundary's stats.

    With no ``stats`` given it reads every wrapped adapter of the process; the registry passes
    the stats of its own adapters. Computing a report sorts at most 1024 durations per method.
    """

    def __init__(self, stats: list[MethodStats] | None = None) -> None:
        self._stats = stats

    def _source(self) -> Iterator[MethodStats]:
        return iter(self._stats if self._stats is not None else all_stats())

    def report(self) -> list[MethodPerformance]:
        out: list[MethodPerformance] = []
        for s in self._source():
            ordered = sorted(s.recent())
            out.append(
                MethodPerformance(
                    s.port,
                    s.adapter,
                    s.method,
                    s.calls,
                    s.errors,
                    s.rejected,
                    _quantile(ordered, 0.50),
                    _quantile(ordered, 0.95),
                    _quantile(ordered, 0.99),
                )
            )
        out.sort(key=lambda m: (m.port, m.adapter, m.method))
        return out
