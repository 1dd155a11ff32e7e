"""What a reload decides and tells: which entries can be kept (their resolved configuration
and dependencies unchanged) and the timeline entry describing what changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portfolio_core.boundary.timeline import publish
from portfolio_core.manifest import Plan, plan_diff
from portfolio_core.registry._state import State

if TYPE_CHECKING:
    from portfolio_core.manifest.wiring import PlannedEntry, WiredEntry

__all__ = ["kept_entries", "publish_reload", "same_entry"]


def kept_entries(
    planned: Plan, old_plan: Plan | None, old: State
) -> tuple[dict[str, WiredEntry], set[str]]:
    """The entries of ``planned`` whose built instance in ``old`` can be kept, and the names
    of the others (to build): an entry is kept when `same_entry` holds and none of its
    dependencies is rebuilt."""
    from portfolio_core.manifest.wiring import WiredEntry

    old_entries = old_plan.entries if old_plan is not None else {}
    keep: dict[str, WiredEntry] = {}
    changed: set[str] = set()
    for name in planned.order:
        entry = planned.entries[name]
        before = old_entries.get(name)
        item = old.items.get(name)
        if (
            before is not None
            and item is not None
            and same_entry(before, entry)
            and not any(dep in changed for dep in entry.dependencies())
        ):
            keep[name] = WiredEntry(entry, item.instance, item.adapter)
        else:
            changed.add(name)
    return keep, changed


def same_entry(before: PlannedEntry, after: PlannedEntry) -> bool:
    """Whether an entry's resolved configuration is unchanged (its instance can be kept)."""
    return (
        before.cls is after.cls
        and before.adapter == after.adapter
        and type(before.config) is type(after.config)
        and before.config == after.config
        and before.uses == after.uses
        and before.telemetry == after.telemetry
        and before.protection == after.protection
        and before.fallback == after.fallback
        and before.alias == after.alias
        and before.port is after.port
    )


def publish_reload(file: str, old: Plan | None, new: Plan | None) -> None:
    """Publish a successful reload of ``file`` to the timeline, with the diff of the plans."""
    if new is None:
        return
    diff = plan_diff(old, new)
    parts = [f"{len(diff[key])} {key}" for key in ("added", "removed", "changed") if diff[key]]
    publish(
        "reload",
        f"reloaded {file}: " + (", ".join(parts) if parts else "no entry changed"),
        detail="; ".join(
            f"{c['entry']}: " + ", ".join(f["path"] for f in c["fields"]) for c in diff["changed"]
        ),
        data=diff,
    )
