"""Finding adapter classes (entry point or ``module:Class``) and checking them against
their port once, at load."""

from __future__ import annotations

import collections.abc
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
from portfolio_core.manifest.errors import did_you_mean
from portfolio_core.ports.catalogue import PORTS, PortInfo

__all__ = [
    "Dependency",
    "ResolveFailure",
    "check_class",
    "check_instance",
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


def _load_class(ref: str) -> type | ResolveFailure:
    try:
        obj = resolve_reference(ref)
    except UnresolvedReference as exc:
        if exc.kind == "import-failed":
            return ResolveFailure("adapter-import-failed", exc.message)
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
    try:
        obj = ep.load()
    except Exception as exc:
        return ResolveFailure(
            "adapter-import-failed",
            f"adapter {ref!r} ({ep.value}, from {_dist_name(ep)}) exists but importing it "
            f"failed: {import_cause(exc)}",
        )
    if not isinstance(obj, type):
        return ResolveFailure("not-a-class", f"entry point {ref!r} ({ep.value}) is not a class")
    return obj


_SKIP = {"__init__", "__class_getitem__", "__init_subclass__"}


def _protocol_members(protocol: type) -> dict[str, str]:
    """name -> ``async`` | ``sync`` | ``attribute`` for every member the protocol declares."""
    members: dict[str, str] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object, typing.Protocol, typing.Generic) or not getattr(
            klass, "_is_protocol", False
        ):
            continue
        for name in getattr(klass, "__annotations__", {}):
            if not name.startswith("_"):
                members[name] = "attribute"
        for name, value in vars(klass).items():
            if name.startswith("_") or name in _SKIP:
                continue
            if isinstance(value, property):
                members[name] = "attribute"
            elif isinstance(value, (staticmethod, classmethod)):
                members[name] = "async" if inspect.iscoroutinefunction(value.__func__) else "sync"
            elif inspect.isfunction(value):
                members[name] = "async" if inspect.iscoroutinefunction(value) else "sync"
    return members


_MEMBERS: dict[type, dict[str, str]] = {}


_CLASS_CHECKS: weakref.WeakKeyDictionary[type, dict[str, list[str]]] = weakref.WeakKeyDictionary()


def check_class(cls: type, port: PortInfo) -> list[str]:
    """Problems with ``cls``'s methods against ``port`` (missing, or sync where async is
    required and vice versa). Attributes and properties are checked on the instance.
    Computed once per class and port."""
    per_port = _CLASS_CHECKS.setdefault(cls, {})
    if port.key not in per_port:
        per_port[port.key] = _check_class(cls, port)
    return list(per_port[port.key])


def _check_class(cls: type, port: PortInfo) -> list[str]:
    members = _MEMBERS.get(port.protocol)
    if members is None:
        members = _MEMBERS[port.protocol] = _protocol_members(port.protocol)
    problems: list[str] = []
    for name, kind in members.items():
        if kind == "attribute":
            continue
        try:
            attr = inspect.getattr_static(cls, name)
        except AttributeError:
            problems.append(f"{cls.__name__} does not implement {port.name}: missing {name}()")
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        function = inspect.unwrap(attr) if callable(attr) else attr
        if not callable(function):
            problems.append(f"{cls.__name__}.{name} must be a method ({port.name} declares one)")
        elif kind == "async" and not inspect.iscoroutinefunction(function):
            problems.append(
                f"{cls.__name__}.{name} must be 'async def': {port.name}.{name} is async"
            )
        elif kind == "sync" and inspect.iscoroutinefunction(function):
            problems.append(
                f"{cls.__name__}.{name} must not be 'async def': {port.name}.{name} is sync"
            )
    return problems


def check_instance(instance: object, port: PortInfo) -> list[str]:
    """Problems with the attributes and properties the port declares, on the instance."""
    members = _MEMBERS.get(port.protocol) or _protocol_members(port.protocol)
    problems: list[str] = []
    for name, kind in members.items():
        if kind != "attribute":
            continue
        try:
            inspect.getattr_static(instance, name)
        except AttributeError:
            if name not in _annotations(type(instance)):
                problems.append(
                    f"{type(instance).__name__} does not implement {port.name}: "
                    f"missing attribute {name!r}"
                )
    return problems


def _annotations(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        names.update(getattr(klass, "__annotations__", {}))
    return names


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
