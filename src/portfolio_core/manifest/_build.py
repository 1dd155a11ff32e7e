"""Building a `Plan`: every adapter in dependency order, all or nothing, into a `Wiring`."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from portfolio_core.manifest import _boundary
from portfolio_core.manifest._plan import Plan, PlannedEntry
from portfolio_core.manifest.errors import ManifestError, Problem
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.introspection import check_instance
from portfolio_core.ports.lifecycle import close_adapter_blocking

__all__ = ["WiredEntry", "Wiring", "build"]


@dataclass
class WiredEntry:
    """A built adapter: ``instance`` is what ``from_config`` returned, ``adapter`` what the
    registry hands out (the same object unless telemetry or protection is configured)."""

    plan: PlannedEntry
    instance: object
    adapter: object

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def port(self) -> PortInfo:
        return self.plan.port


@dataclass
class Wiring:
    """Every adapter of a manifest, built, in dependency order."""

    plan: Plan | None
    entries: dict[str, WiredEntry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    defaults: dict[str, str] = field(default_factory=dict)
    secret_values: frozenset[str] = frozenset()


def _close_quietly(instance: object) -> None:
    """Close an adapter while unwinding a failed build (the lifecycle rule of
    ``portfolio_core.ports.lifecycle``); its errors are dropped: the build error is what
    is reported."""
    with contextlib.suppress(Exception):
        close_adapter_blocking(instance)


def build(planned: Plan, *, keep: Mapping[str, WiredEntry] | None = None) -> Wiring:
    """Build every adapter of ``planned`` in dependency order.

    ``keep`` names entries that are not built again: their already built instance and
    adapter are reused as they are (a partial reload; the caller decides which entries are
    unchanged, dependencies included).

    All or nothing: when any ``from_config`` raises or an instance does not satisfy its port,
    the adapters built by this call are closed (kept ones are not touched) and
    `ManifestError` lists every failure.
    """
    problems: list[Problem] = []
    secrets = planned.composed.secret_values
    wired: dict[str, WiredEntry] = {}
    kept = keep or {}
    for name in planned.order:
        entry = planned.entries[name]
        if any(dep not in wired for dep in entry.dependencies()):
            continue  # a dependency failed: already reported
        if name in kept:
            wired[name] = WiredEntry(entry, kept[name].instance, kept[name].adapter)
            continue
        kwargs: dict[str, object] = {}
        for keyword, target in entry.uses.items():
            if isinstance(target, str):
                kwargs[keyword] = wired[target].adapter
            else:
                kwargs[keyword] = {t: wired[t].adapter for t in target}
        path = ("adapters", name)
        if entry.alias is not None:
            aliased = wired[entry.alias]
            wired[name] = WiredEntry(entry, aliased.instance, aliased.adapter)
            continue
        try:
            assert entry.config is not None  # noqa: S101  (plan() rejects invalid configs)
            instance = entry.cls.from_config(entry.config, **kwargs)  # type: ignore[attr-defined]
        except Exception as exc:
            problems.append(
                Problem(
                    "build-failed",
                    f"{entry.cls.__qualname__}.from_config raised {type(exc).__name__}: {exc}",
                    path,
                    entry.origin,
                )
            )
            continue
        mismatches = check_instance(instance, entry.port.protocol)
        if mismatches:
            for message in mismatches:
                problems.append(Problem("port-mismatch", message, (*path, "adapter"), entry.origin))
            _close_quietly(instance)
            continue
        try:
            adapter = _boundary.wrap(
                instance,
                port=entry.port,
                name=name,
                adapter_type=entry.adapter,
                telemetry=entry.telemetry,
                protection=entry.protection,
                fallback=wired[entry.fallback].adapter if entry.fallback else None,
            )
        except Exception as exc:
            problems.append(
                Problem(
                    "build-failed",
                    f"wrapping failed: {type(exc).__name__}: {exc}",
                    path,
                    entry.origin,
                )
            )
            _close_quietly(instance)
            continue
        wired[name] = WiredEntry(entry, instance, adapter)
    if problems:
        for name in reversed(list(wired)):
            if name not in kept and (
                wired[name].plan.alias is None or wired[name].plan.alias not in kept
            ):
                _close_quietly(wired[name].instance)
        raise ManifestError([p.redacted(secrets) for p in problems])
    return Wiring(planned, wired, list(planned.order), dict(planned.defaults), frozenset(secrets))
