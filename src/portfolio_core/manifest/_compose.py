"""Turning a manifest file into one located tree: extends chain, profiles, environment,
explicit overrides (in that precedence), then interpolation and secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from portfolio_core.manifest._interpolate import Interpolator
from portfolio_core.manifest._tree import LList, LMap, load_yaml_file
from portfolio_core.manifest.errors import Origin, Problem, did_you_mean
from portfolio_core.manifest.migrations import CURRENT_SCHEMA_VERSION, migrate_tree
from portfolio_core.ports.config_store import ConfigValues

__all__ = [
    "ENV_PREFIX",
    "EXTENDS_ROOTS_ENV",
    "PROFILE_ENV",
    "Composed",
    "compose",
    "display_path",
]

PROFILE_ENV = "PORTFOLIO_CORE_PROFILE"
ENV_PREFIX = "PORTFOLIO_CORE__"
EXTENDS_ROOTS_ENV = "PORTFOLIO_CORE_EXTENDS_ROOTS"
"""Folders (``os.pathsep``-separated) that ``extends`` may reach besides the manifest's own."""
_RESERVED_IN_PROFILE = ("schema_version", "extends", "profiles")


@dataclass
class Composed:
    """The merged, interpolated tree of one manifest and how it was made."""

    tree: LMap
    files: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    secret_values: set[str] = field(default_factory=set)
    config_keys: frozenset[str] = frozenset()
    """Run-time configuration keys the manifest references (``${config:KEY}``)."""
    deprecations: list[tuple[Origin, str]] = field(default_factory=list)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when under it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def relabel(value: Any, layer: str) -> Any:
    """Mark every origin inside ``value`` as set by ``layer`` (used for profiles)."""
    if isinstance(value, LMap):
        value.origin = replace(value.origin, layer=layer)
        for key in value:
            value.key_origins[key] = replace(value.key_origins[key], layer=layer)
            value.value_origins[key] = replace(value.value_origins[key], layer=layer)
            relabel(value[key], layer)
    elif isinstance(value, LList):
        value.origin = replace(value.origin, layer=layer)
        value.origins = [replace(o, layer=layer) for o in value.origins]
        for item in value:
            relabel(item, layer)
    return value


def merge_into(target: LMap, overlay: LMap) -> None:
    """The merge rule: maps merge key by key, recursively; anything else (scalars, lists,
    ``null``, a map over a scalar) replaces what was there."""
    for key, value in overlay.items():
        current = target.get(key)
        if isinstance(current, LMap) and isinstance(value, LMap):
            merge_into(current, value)  # the key keeps where it was first defined
        else:
            target.set(key, value, overlay.key_origins[key], overlay.value_origins[key])


def locate(value: Any, origin: Origin) -> Any:
    """Plain dicts and lists (from overrides) as located containers, all at ``origin``."""
    if isinstance(value, Mapping):
        out = LMap(origin)
        for k, v in value.items():
            out.set(str(k), locate(v, origin), origin, origin)
        return out
    if isinstance(value, (list, tuple)):
        items = LList(origin)
        for v in value:
            items.append(locate(v, origin))
            items.origins.append(origin)
        return items
    return value


class _Composer:
    def __init__(self, environ: Mapping[str, str], problems: list[Problem]) -> None:
        self.environ = environ
        self.problems = problems
        self.files: list[str] = []
        self.deprecations: list[tuple[Origin, str]] = []
        self.loaded: set[Path] = set()
        self.roots: list[Path] = []

    def allowed(self, resolved: Path) -> bool:
        return any(resolved.is_relative_to(root) for root in self.roots)

    def chain(self, path: Path, referenced_at: Origin, stack: list[Path], top: bool) -> list[LMap]:
        """Trees of ``path`` and everything it extends, base first; a file already part of
        the chain (a diamond) is not read again and contributes once, at its first place."""
        resolved = path.resolve()
        display = display_path(path)
        if top:
            self.roots = [resolved.parent] + [
                Path(p).resolve()
                for p in self.environ.get(EXTENDS_ROOTS_ENV, "").split(os.pathsep)
                if p and "\x00" not in p
            ]
        elif not self.allowed(resolved):
            self.problems.append(
                Problem(
                    "invalid-extends",
                    f"extends reaches {display}, outside the manifest's folder",
                    ("extends",),
                    referenced_at,
                    f"list its folder in {EXTENDS_ROOTS_ENV} to allow it",
                )
            )
            return []
        if resolved in stack:
            cycle = [display_path(p) for p in stack[stack.index(resolved) :]] + [display]
            self.problems.append(
                Problem(
                    "extends-cycle",
                    "extends cycle: " + " -> ".join(cycle),
                    ("extends",),
                    referenced_at,
                )
            )
            return []
        if resolved in self.loaded:
            return []
        self.loaded.add(resolved)
        layer = "file" if top else "extends"
        before = len(self.problems)
        tree = load_yaml_file(path, display, self.problems, referenced_at, layer)
        if tree is None:
            if len(self.problems) == before:  # an empty document
                self.problems.append(
                    Problem(
                        "invalid-manifest",
                        f"{display} is empty",
                        (),
                        Origin(display, 1, 1, layer),
                        f"start it with 'schema_version: {CURRENT_SCHEMA_VERSION}'",
                    )
                )
            return []
        if not isinstance(tree, LMap):
            self.problems.append(
                Problem(
                    "invalid-manifest",
                    "a manifest must be a mapping at the top level",
                    (),
                    getattr(tree, "origin", Origin(display, 1, 1, layer)),
                )
            )
            return []
        self.files.append(display)
        context = migrate_tree(
            tree, self.problems, default_version=None if top else CURRENT_SCHEMA_VERSION
        )
        self.deprecations.extend(context.notices)
        result: list[LMap] = []
        if "extends" in tree:
            extends_origin = tree.value_origins["extends"]
            extends = tree.remove("extends")
            refs: list[tuple[Any, Origin]]
            if isinstance(extends, LList):
                refs = list(zip(extends, extends.origins, strict=True))
            else:
                refs = [(extends, extends_origin)]
            for ref, origin in refs:
                if isinstance(ref, str) and "\x00" in ref:
                    self.problems.append(
                        Problem(
                            "invalid-extends",
                            "an extends path cannot contain the NUL character",
                            ("extends",),
                            origin,
                        )
                    )
                    continue
                if not isinstance(ref, str) or not ref:
                    self.problems.append(
                        Problem(
                            "invalid-extends",
                            "extends must be a file path or a list of them",
                            ("extends",),
                            origin,
                        )
                    )
                    continue
                base = Path(ref)
                if not base.is_absolute():
                    base = path.parent / base
                result.extend(self.chain(base, origin, [*stack, resolved], top=False))
        result.append(tree)
        return result


def _set_path(
    tree: LMap, parts: list[str], value: Any, origin: Origin, problems: list[Problem]
) -> None:
    node = tree
    for index, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = LMap(origin)
            node.set(part, child, origin, origin)
        if not isinstance(child, LMap):
            problems.append(
                Problem(
                    "invalid-override",
                    f"cannot set {'.'.join(parts)}: {'.'.join(parts[: index + 1])} "
                    "is not a mapping",
                    tuple(parts),
                    origin,
                )
            )
            return
        node = child
    last = parts[-1]
    current = node.get(last)
    if isinstance(current, LMap) and isinstance(value, LMap):
        merge_into(current, value)
    else:
        node.set(last, value, origin, origin)


def compose(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config: ConfigValues | None = None,
    problems: list[Problem],
) -> Composed | None:
    """Merge the layers of ``path`` in precedence order; problems are appended."""
    env = os.environ if environ is None else environ
    if "\x00" in os.fspath(path):
        problems.append(
            Problem(
                "file-unreadable",
                "the manifest path contains the NUL character",
                (),
                Origin("<manifest path>"),
            )
        )
        return None
    manifest_path = Path(path)
    composer = _Composer(env, problems)
    top_origin = Origin(display_path(manifest_path))
    trees = composer.chain(manifest_path, top_origin, [], top=True)
    if not trees:
        return None
    root = LMap(trees[-1].origin)
    profiles = LMap(trees[-1].origin)
    for tree in trees:
        if "profiles" in tree:
            profile_origin = tree.value_origins["profiles"]
            section = tree.remove("profiles")
            if not isinstance(section, LMap) or not all(
                isinstance(v, LMap) for v in section.values()
            ):
                problems.append(
                    Problem(
                        "invalid-profiles",
                        "profiles must map names to overlays (mappings)",
                        ("profiles",),
                        profile_origin,
                    )
                )
                continue
            merge_into(profiles, section)
        merge_into(root, tree)
    # profile overlays
    chosen = profile if profile is not None else env.get(PROFILE_ENV)
    chosen_origin = Origin(
        "argument profile" if profile is not None else f"env {PROFILE_ENV}", layer="profile"
    )
    applied: list[str] = []
    for name in [n.strip() for n in (chosen or "").split(",") if n.strip()]:
        overlay = profiles.get(name)
        if overlay is None:
            problems.append(
                Problem(
                    "unknown-profile",
                    f"no profile named {name!r}",
                    ("profiles",),
                    chosen_origin,
                    did_you_mean(name, profiles)
                    or f"profiles defined: {', '.join(profiles) or 'none'}",
                )
            )
            continue
        for key in _RESERVED_IN_PROFILE:
            if key in overlay:
                problems.append(
                    Problem(
                        "invalid-profiles",
                        f"a profile cannot set {key!r}",
                        ("profiles", name, key),
                        overlay.key_origins[key],
                    )
                )
                overlay.remove(key)
        merge_into(root, relabel(overlay, f"profile:{name}"))
        applied.append(name)
    # environment layer
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in var[len(ENV_PREFIX) :].split("__")]
        origin = Origin(f"env {var}", layer="env")
        if not all(parts):
            problems.append(
                Problem(
                    "invalid-override",
                    f"{var} does not name a manifest path (segments are separated by '__')",
                    (),
                    origin,
                )
            )
            continue
        _set_path(root, parts, env[var], origin, problems)
    # explicit overrides
    for dotted, value in (overrides or {}).items():
        parts = str(dotted).split(".")
        origin = Origin(f"override {dotted}", layer="override")
        if not all(parts):
            problems.append(
                Problem("invalid-override", f"bad override path {dotted!r}", (), origin)
            )
            continue
        _set_path(root, parts, locate(value, origin), origin, problems)
    interpolator = Interpolator(env, problems, config)
    interpolator.apply(root)
    return Composed(
        root,
        files=composer.files,
        profiles=applied,
        secret_values=interpolator.secret_values,
        config_keys=frozenset(interpolator.config_keys),
        deprecations=composer.deprecations,
    )
