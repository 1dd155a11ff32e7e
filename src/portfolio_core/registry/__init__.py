"""The registry: typed lookup of wired adapters, health, counters and lifecycle.

Built from a manifest (`Registry.from_manifest`) or by hand (`Registry.register`).
A lookup is one dict access: ``registry.get(Cache)`` returns the port's default adapter,
``registry.get(Cache, "sessions")`` a named one, typed as the port for mypy.
"""

from __future__ import annotations

from portfolio_core.registry._handles import handle_target
from portfolio_core.registry._registry import (
    CallStats,
    EntryHealth,
    EntryInfo,
    HealthReport,
    Registry,
    ReloadReport,
)

__all__ = [
    "CallStats",
    "EntryHealth",
    "EntryInfo",
    "HealthReport",
    "Registry",
    "ReloadReport",
    "handle_target",
]
