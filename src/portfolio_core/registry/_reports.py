"""What the registry reports: entry metadata, call counts, health and reload results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from portfolio_core.ports.catalogue import PortInfo

if TYPE_CHECKING:
    from portfolio_core.services.memory import MemoryStatus

__all__ = [
    "CallStats",
    "EntryHealth",
    "EntryInfo",
    "HealthReport",
    "HealthSink",
    "ReloadReport",
]


class HealthSink(Protocol):
    """Receives the result of each health check (``HealthAggregator.record`` fits)."""

    def record(
        self, name: str, healthy: bool, detail: str = "", latency_s: float | None = None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """Metadata of one registered adapter."""

    name: str
    port: PortInfo
    adapter_type: str
    adapter_class: type
    default: bool
    wrapped: bool
    uses: Mapping[str, str | list[str]]
    location: str


@dataclass(frozen=True, slots=True)
class CallStats:
    """Calls and errors (including calls refused by protection) counted by the boundary
    proxy, summed over the port's methods; per-method figures are on
    ``registry.get(...).boundary_stats``."""

    calls: int
    errors: int


@dataclass(frozen=True, slots=True)
class EntryHealth:
    """The health of one entry. ``marked`` is true when set by ``mark_*`` rather than a ping."""

    name: str
    healthy: bool
    detail: str = ""
    latency_s: float | None = None
    marked: bool = False


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every entry's health; ``healthy`` is true only when all entries are.

    ``memory`` is the memory budget's last check when the manifest sets one (``memory:``),
    else None.
    """

    healthy: bool
    entries: Mapping[str, EntryHealth]
    memory: MemoryStatus | None = None

    @property
    def status(self) -> Literal["healthy", "degraded", "unhealthy"]:
        """``healthy`` when ``healthy`` is true and the memory budget is not under pressure,
        ``unhealthy`` when no entry is healthy, ``degraded`` when some are (the overall
        status ``HealthAggregator`` computes) or when all are but memory is over the budget
        (``memory.reason`` says why)."""
        if self.healthy:
            return "degraded" if self.memory is not None and self.memory.pressure else "healthy"
        if any(e.healthy for e in self.entries.values()):
            return "degraded"
        return "unhealthy"


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a successful `Registry.reload` did, by entry name.

    ``rebuilt``: entries whose resolved configuration (or a dependency) changed, built anew;
    ``kept``: entries left exactly as they were (same instances and connections);
    ``added`` / ``removed``: entries new in, or gone from, the manifest;
    ``undrained``: replaced adapters closed although calls were still in flight after the
    drain timeout.
    """

    rebuilt: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    undrained: tuple[str, ...] = ()
