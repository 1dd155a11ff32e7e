"""The registry's memory budget: built from the manifest's ``memory:`` section, fed with
the registry's Shrinkable adapters, started and stopped with the registry (private)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from portfolio_core.boundary.timeline import publish
from portfolio_core.manifest import Plan
from portfolio_core.services.memory import (
    MemoryBudget,
    MemoryConfig,
    MemoryStatus,
    shrinkable_components,
)

__all__ = ["SECTION", "follow"]

SECTION = "memory"


def follow(
    budget: MemoryBudget | None,
    plan: Plan | None,
    instances: Iterable[tuple[str, object]],
) -> MemoryBudget | None:
    """The budget for a (new) wiring: ``budget`` itself with the new components when the
    section is unchanged, a new one when it changed (the caller stops the old one), None
    when the manifest has no ``memory:`` section."""
    config = plan.sections.get(SECTION) if plan is not None else None
    if not isinstance(config, MemoryConfig):
        return None
    components = shrinkable_components(list(instances))
    if budget is not None and budget.config == config:
        budget.replace_components(components)
        return budget
    fresh = MemoryBudget.from_config(config, components)
    fresh.on_pressure = publish_pressure
    return fresh


def publish_pressure(status: MemoryStatus) -> None:
    """Put a check under pressure on the process's timeline (the operator console shows it):
    a warning, or an error when releasing could not bring memory back under the budget;
    repeated checks update one event."""
    severity: Literal["warning", "error"] = "error" if status.still_over else "warning"
    publish(
        "memory",
        status.reason,
        severity=severity,
        data={
            "used": status.used,
            "budget": status.budget,
            "after": status.after,
            "released": {r.name: r.freed for r in status.released},
        },
        coalesce=("memory-pressure", severity),  # a coalesced event keeps its severity
    )
