"""Finding adapter classes (entry point or ``module:Class``), checking that the extras they
declare are installed, and reading what their ``from_config`` depends on. Checking a class
against its port is ``portfolio_core.ports.introspection``'s job."""

from __future__ import annotations

import collections.abc
import functools
import importlib.metadata
import inspect
import sys
import typing
import weakref
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from portfolio_core._references import (
    UnresolvedReference,
    import_cause,
    is_reference,
    resolve_reference,
)
from portfolio_core.manifest import extras as _extras
from portfolio_core.manifest.errors import did_you_mean
from portfolio_core.ports.catalogue import PORTS, PortInfo

__all__ = [
    "Dependency",
    "ResolveFailure",
    "dependency_params",
    "installed_adapters",
    "resolve_adapter",
]


@dataclass(frozen=True, slots=True)
class ResolveFailure:
    """Why an adapter reference could not be turned into a class."""

    kind: str
    message: str
    hint: str | None = None


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "<unknown distribution>"


def installed_adapters(port: PortInfo) -> dict[str, list[EntryPoint]]:
    """Entry points of ``port``'s group by name; a list longer than one is a conflict."""
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=port.entry_point_group):
        claims = found.setdefault(ep.name, [])
        if all(other.value != ep.value for other in claims):
            claims.append(ep)
    return found


def _extra_failure(what: str, extras: list[str], dist: str) -> ResolveFailure | None:
    """A ``missing-extra`` failure when one of ``extras`` of ``dist`` is not satisfied."""
    missing = _extras.missing_extras(extras, dist)
    if not missing:
        return None
    lacking = sorted({r for reqs in missing.values() for r in reqs})
    names = ", ".join(repr(e) for e in missing)
    plural = "s" if len(missing) > 1 else ""
    return ResolveFailure(
        "missing-extra",
        f"{what} needs the {names} extra{plural} of {dist}, which is not installed "
        f"(missing: {', '.join(lacking)})",
        _extras.install_command(missing, dist),
    )


def _missing_module_failure(
    what: str, exc: BaseException | None, dist: str | None
) -> ResolveFailure | None:
    """A ``missing-extra`` failure when ``exc`` is a missing third-party module that an extra
    of ``dist`` provides."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name or dist is None:
        return None
    extra = _extras.extra_providing(exc.name, dist)
    if extra is None:
        return None
    return ResolveFailure(
        "missing-extra",
        f"{what} needs the {extra!r} extra of {dist}, which is not installed ({exc})",
        _extras.install_command([extra], dist),
    )


@functools.cache
def _declared_extras(
    top_level: str, group: str
) -> dict[tuple[str, str], tuple[tuple[str, ...], str]]:
    """(module, attr) -> (extras, distribution) of the entry points in ``group`` of the
    distribution named like the top-level package ``top_level`` (``portfolio_core`` ->
    ``portfolio-core``); empty when there is none. Read once per process: reading every
    distribution's entry points on each load would double a manifest's load time."""
    try:
        dist = importlib.metadata.distribution(top_level)
    except importlib.metadata.PackageNotFoundError:
        return {}
    return {
        (ep.module, ep.attr): (tuple(ep.extras), dist.name)
        for ep in dist.entry_points
        if ep.group == group and ep.extras
    }


def _distribution_of(module_name: str) -> str | None:
    """The installed distribution named like the module's top-level package, if any."""
    try:
        return importlib.metadata.distribution(module_name.partition(".")[0]).name
    except importlib.metadata.PackageNotFoundError:
        return None


def _load_class(ref: str) -> type | ResolveFailure:
    try:
        obj = resolve_reference(ref)
    except UnresolvedReference as exc:
        if exc.kind == "import-failed":
            module_name = ref.partition(":")[0]
            failure = _missing_module_failure(
                repr(ref), exc.__cause__, _distribution_of(module_name) or _extras.DISTRIBUTION
            )
            return failure or ResolveFailure("adapter-import-failed", exc.message)
        if exc.kind == "no-attribute" and exc.module is not None:
            module = sys.modules.get(exc.module)
            classes = [n for n in exc.names if isinstance(getattr(module, n, None), type)]
            wanted = ref.partition(":")[2].split(".")[0]
            return ResolveFailure("unknown-adapter", exc.message, did_you_mean(wanted, classes))
        return ResolveFailure("unknown-adapter", exc.message)
    if not isinstance(obj, type):
        return ResolveFailure("not-a-class", f"{ref} is not a class")
    return obj


def resolve_adapter(
    port: PortInfo, ref: str, cache: dict[str, dict[str, list[EntryPoint]]]
) -> type | ResolveFailure:
    """The class ``ref`` names for ``port``: ``module:Class`` or an entry-point name.

    ``cache`` holds the entry points already read during this load (one scan per group).
    """
    if is_reference(ref):
        module_name, _, attr = ref.partition(":")
        if not module_name or not attr:
            return ResolveFailure("unknown-adapter", f"{ref!r} is not 'module:Class'")
        declared = _declared_extras(module_name.partition(".")[0], port.entry_point_group)
        extras, dist = declared.get((module_name, attr), ((), ""))
        if extras:  # the same class is installed as an entry point that names its extras
            failure = _extra_failure(f"adapter {ref!r}", list(extras), dist)
            if failure is not None:
                return failure
        return _load_class(ref)
    group = cache.get(port.key)
    if group is None:
        group = cache[port.key] = installed_adapters(port)
    claims = group.get(ref)
    if not claims:
        return ResolveFailure(
            "unknown-adapter",
            f"unknown adapter {ref!r} for port {port.key}",
            did_you_mean(ref, group)
            or (
                f"installed: {', '.join(sorted(group))}"
                if group
                else f"no adapter is installed in {port.entry_point_group}; "
                "name a class as 'module:Class'"
            ),
        )
    if len(claims) > 1:
        who = " and ".join(f"{_dist_name(ep)} ({ep.value})" for ep in claims)
        return ResolveFailure(
            "ambiguous-adapter",
            f"adapter name {ref!r} for port {port.key} is claimed by several installed "
            f"distributions: {who}",
            "uninstall one, or name the class as 'module:Class'",
        )
    ep = claims[0]
    what = f"adapter {ref!r} for port {port.key}"
    if ep.extras:
        failure = _extra_failure(what, list(ep.extras), _dist_name(ep))
        if failure is not None:
            return failure
    try:
        obj = ep.load()
    except Exception as exc:
        failure = _missing_module_failure(what, exc, getattr(ep.dist, "name", None))
        if failure is not None:
            return failure
        return ResolveFailure(
            "adapter-import-failed",
            f"adapter {ref!r} ({ep.value}, from {_dist_name(ep)}) exists but importing it "
            f"failed: {import_cause(exc)}",
        )
    if not isinstance(obj, type):
        return ResolveFailure("not-a-class", f"entry point {ref!r} ({ep.value}) is not a class")
    return obj


@dataclass(frozen=True, slots=True)
class Dependency:
    """A keyword ``from_config`` accepts for ``uses``: the port it expects (when its
    annotation names one) and whether it takes a mapping of several adapters."""

    name: str
    required: bool
    port: PortInfo | None
    many: bool | None


_PORT_BY_PROTOCOL = {p.protocol: p for p in PORTS}


def _expected(annotation: Any) -> tuple[PortInfo | None, bool | None]:
    if annotation in _PORT_BY_PROTOCOL:
        return _PORT_BY_PROTOCOL[annotation], False
    origin = typing.get_origin(annotation)
    if origin in (dict, collections.abc.Mapping, typing.Mapping):
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] in _PORT_BY_PROTOCOL:
            return _PORT_BY_PROTOCOL[args[1]], True
        return None, True
    return None, None


_DEPS: weakref.WeakKeyDictionary[type, tuple[dict[str, Dependency], bool] | None] = (
    weakref.WeakKeyDictionary()
)


def dependency_params(cls: type) -> tuple[dict[str, Dependency], bool] | None:
    """The dependencies ``cls.from_config`` accepts, and whether it takes ``**uses``;
    ``None`` when the signature cannot be read. Computed once per class."""
    if cls not in _DEPS:
        _DEPS[cls] = _dependency_params(cls)
    return _DEPS[cls]


def _dependency_params(cls: type) -> tuple[dict[str, Dependency], bool] | None:
    from_config = getattr(cls, "from_config", None)
    if from_config is None:
        return None
    try:
        signature = inspect.signature(from_config)
    except (TypeError, ValueError):
        return None
    try:
        hints = typing.get_type_hints(from_config)
    except Exception:  # unresolvable forward references: check names only
        hints = {}
    params = list(signature.parameters.values())[1:]  # the first is the config
    deps: dict[str, Dependency] = {}
    var_keyword = False
    for param in params:
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
            continue
        if param.kind not in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            continue
        port, many = _expected(hints.get(param.name))
        deps[param.name] = Dependency(
            param.name, param.default is inspect.Parameter.empty, port, many
        )
    return deps, var_keyword
