"""The registry's memory budget: built from the manifest's ``memory:`` section, fed with
the registry's Shrinkable adapters, started and stopped with the registry (private)."""

from __future__ import annotations

from collections.abc import Iterable

from portfolio_core.manifest import Plan
from portfolio_core.services.memory import MemoryBudget, MemoryConfig, shrinkable_components

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
    return MemoryBudget.from_config(config, components)
