"""The checks across entries of a manifest: ``local://`` aliases, ``uses`` and fallback
targets against what ``from_config`` takes, dependency cycles, the start order and the
default entry of each port."""

from __future__ import annotations

from portfolio_core.manifest._plan import PlannedEntry
from portfolio_core.manifest._resolve import dependency_params
from portfolio_core.manifest._tree import LMap
from portfolio_core.manifest._validate import Validator
from portfolio_core.manifest.errors import did_you_mean

__all__ = ["check_graph", "choose_defaults"]


def _resolve_aliases(entries: dict[str, PlannedEntry], v: Validator) -> None:
    """Give every ``local://`` entry its target's class and config, or report why not."""
    for entry in entries.values():
        if entry.alias is None:
            continue
        path = ("adapters", entry.name, "address")
        target = entries.get(entry.alias)
        seen = {entry.name}
        while target is not None and target.alias is not None and target.name not in seen:
            seen.add(target.name)
            target = entries.get(target.alias)
        if target is None or target.alias is not None:
            known = v.tree.get("adapters")
            if target is None and not (isinstance(known, LMap) and entry.alias in known):
                v.add(
                    "unknown-entry",
                    f"no adapter entry named {entry.alias!r}",
                    path,
                    hint=did_you_mean(entry.alias, known or ()),
                )
            elif target is not None:
                v.add("dependency-cycle", "local addresses form a cycle", path)
            continue
        if target.port.key != entry.port.key:
            v.add(
                "invalid-address",
                f"{entry.alias!r} is a {target.port.key} entry, not a {entry.port.key} entry",
                path,
            )
            continue
        entry.cls = target.cls
        entry.config = target.config


def check_graph(entries: dict[str, PlannedEntry], v: Validator) -> list[str]:
    """Check uses/fallback targets, keywords and defaults; return the dependency order."""
    _resolve_aliases(entries, v)
    for entry in entries.values():
        if entry.alias is not None:
            continue
        base = ("adapters", entry.name)
        params = dependency_params(entry.cls)
        for keyword, target in entry.uses.items():
            path = (*base, "uses", keyword)
            names = [target] if isinstance(target, str) else target
            for index, other in enumerate(names):
                where = path if isinstance(target, str) else (*path, index)
                if other not in entries:
                    known = v.tree.get("adapters")
                    if not (isinstance(known, LMap) and other in known):
                        v.add(
                            "unknown-entry",
                            f"no adapter entry named {other!r}",
                            where,
                            hint=did_you_mean(other, known or ()),
                        )
            if params is None:
                continue
            deps, var_keyword = params
            dep = deps.get(keyword)
            if dep is None:
                if not var_keyword:
                    v.add(
                        "unknown-dependency",
                        f"{entry.cls.__qualname__}.from_config takes no keyword {keyword!r}",
                        path,
                        key=True,
                        hint=did_you_mean(keyword, deps)
                        or f"it takes: {', '.join(deps) or 'none'}",
                    )
                continue
            many = not isinstance(target, str)
            if dep.many is not None and dep.many != many:
                shape = "a list of entry names" if dep.many else "one entry name"
                v.add("invalid-dependency", f"{keyword} expects {shape}", path)
                continue
            if dep.port is not None:
                for index, other in enumerate(names):
                    got = entries.get(other)
                    if got is not None and got.port.key != dep.port.key:
                        v.add(
                            "invalid-dependency",
                            f"{keyword} expects a {dep.port.key} adapter; {other!r} is a "
                            f"{got.port.key} adapter",
                            path if not many else (*path, index),
                        )
        if params is not None:
            deps, _ = params
            for dep in deps.values():
                if dep.required and dep.name not in entry.uses:
                    v.add(
                        "missing-dependency",
                        f"{entry.cls.__qualname__} needs uses.{dep.name}"
                        + (f" (a {dep.port.key} adapter)" if dep.port else ""),
                        base,
                        key=True,
                    )
        if entry.fallback is not None:
            fallback_entry = entries.get(entry.fallback)
            fb_path: tuple[str | int, ...] = (*base, "protection", "fallback")
            if isinstance((entry.protection or {}).get("fallback"), dict):
                fb_path = (*fb_path, "adapter")
            if fallback_entry is None:
                known = v.tree.get("adapters")
                if not (isinstance(known, LMap) and entry.fallback in known):
                    v.add(
                        "unknown-entry",
                        f"no adapter entry named {entry.fallback!r}",
                        fb_path,
                        hint=did_you_mean(entry.fallback, known or ()),
                    )
            elif fallback_entry.port.key != entry.port.key:
                v.add(
                    "invalid-dependency",
                    f"a fallback must be of the same port ({entry.port.key}); "
                    f"{entry.fallback!r} is a {fallback_entry.port.key} adapter",
                    fb_path,
                )
            elif entry.fallback == entry.name:
                v.add("dependency-cycle", "an adapter cannot be its own fallback", fb_path)
    # cycles and order
    order: list[str] = []
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in entries[name].dependencies():
            if dep not in entries or (dep == name and entries[name].fallback == name):
                continue
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    v.add(
                        "dependency-cycle",
                        "dependency cycle: " + " -> ".join(cycle),
                        ("adapters", dep, "uses"),
                    )
            elif state.get(dep) is None:
                visit(dep, [*stack, dep])
        state[name] = 2
        order.append(name)

    for name in entries:
        if name not in state:
            visit(name, [name])
    return order


def choose_defaults(entries: dict[str, PlannedEntry], v: Validator) -> dict[str, str]:
    by_port: dict[str, list[PlannedEntry]] = {}
    for entry in entries.values():
        by_port.setdefault(entry.port.key, []).append(entry)
    defaults: dict[str, str] = {}
    for key, group in by_port.items():
        marked = [e for e in group if e.default]
        if len(marked) > 1:
            for extra in marked[1:]:
                v.add(
                    "duplicate-default",
                    f"several {key} entries are marked default: "
                    f"{', '.join(e.name for e in marked)}",
                    ("adapters", extra.name, "default"),
                )
        if marked:
            defaults[key] = marked[0].name
        elif len(group) == 1:
            defaults[key] = group[0].name
    return defaults
