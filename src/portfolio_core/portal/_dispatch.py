"""From ``(entry, method)`` to a bound adapter method, its validator and its counters.

Built from the registry on demand and kept per entry; a registry reload (a new adapter
object under the same name, or a hot-reload handle pointing at a new adapter) is noticed on
the next call and the entry rebound.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.errors import InvalidInputError, NotFoundError, UnsupportedError
from portfolio_core.registry import Registry, handle_target
from portfolio_core.wire import CallKind, MethodSpec, arguments_validator, methods_of

__all__ = ["Bound", "Dispatcher", "ServedEntry", "invalid_arguments"]


@dataclass(slots=True)
class Bound:
    """One method of one served entry, ready to call."""

    entry: str
    spec: MethodSpec
    call: Callable[..., Any]
    validator: pydantic.TypeAdapter[Any]
    stats: Any = None
    plain_arguments: bool = False
    """Whether every argument is a JSON type (str, numbers, bool, lists, dicts, Any): parsed
    JSON can then be validated as is, strictly, without being written out again."""
    """Per-method counters the portal attaches (see ``_metrics``)."""


@dataclass(slots=True)
class ServedEntry:
    name: str
    port: PortInfo
    adapter: object
    methods: dict[str, Bound]
    target: object = None
    """The adapter behind ``adapter`` (itself, or what a hot-reload handle points at)."""

    @property
    def capabilities(self) -> frozenset[str]:
        return capabilities_of(self.adapter)


def invalid_arguments(spec: MethodSpec, exc: pydantic.ValidationError) -> InvalidInputError:
    """The InvalidInputError of a request whose arguments failed validation: it names the
    first field at fault -- the argument, or the field of a value object passed as one
    (``priority`` of a ``NewJob``, as the adapter itself would name it) -- and lists every
    problem (never the values themselves)."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    first = _field_at_fault(spec, problems[0]["loc"]) if problems else None
    listed = "; ".join(
        ".".join(str(part) for part in p["loc"]) + ": " + p["msg"] for p in problems[:10]
    )
    return InvalidInputError(
        f"invalid arguments for {spec.port}.{spec.name}: {listed}",
        field=str(first) if first is not None else None,
    )


def _field_at_fault(spec: MethodSpec, loc: tuple[int | str, ...]) -> str | None:
    """The argument named first in ``loc``, or, when the problem is inside a dataclass passed
    as that argument (``("job", "priority")``, ``("jobs", 0, "priority")``), that field."""
    if not loc:
        return None
    argument = str(loc[0])
    hint = next((p.hint for p in spec.params if p.name == argument), None)
    inner = next((part for part in loc[1:] if isinstance(part, str)), None)
    if inner is not None and inner in _dataclass_fields(hint):
        return inner
    return argument


def _dataclass_fields(hint: Any) -> set[str]:
    """The field names of every dataclass ``hint`` is or holds (``Sequence[NewJob]``)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return {f.name for f in dataclasses.fields(hint)}
    found: set[str] = set()
    for arg in typing.get_args(hint):
        found |= _dataclass_fields(arg)
    return found


_JSON_TYPES = (str, int, float, bool, type(None))


def _plain_hint(hint: Any) -> bool:
    if hint is Any or hint in _JSON_TYPES:
        return True
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (list, dict) or type(hint).__name__ == "UnionType" or origin is typing.Union:
        return all(_plain_hint(a) for a in args)
    if origin in (collections.abc.Sequence, collections.abc.Mapping):
        return all(_plain_hint(a) for a in args)
    return False


def _plain(spec: MethodSpec) -> bool:
    return all(_plain_hint(p.hint) for p in spec.params)


def _unsupported(spec: MethodSpec) -> Callable[..., Any]:
    async def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise UnsupportedError(
            f"this entry does not declare capability {spec.capability!r}, which offers "
            f"{spec.name}()",
            capability=spec.capability,
        )

    return refuse


def _decoding(
    target: Callable[..., Any], forms: tuple[tuple[str, Callable[[Any], Any]], ...]
) -> Callable[..., Any]:
    """``target`` called with the arguments that have a wire form decoded first (what it
    returns, a coroutine or an iterator, is returned as is)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        for name, decode in forms:
            if name in kwargs:
                kwargs[name] = decode(kwargs[name])
        return target(*args, **kwargs)

    return call


class Dispatcher:
    """Resolves served entries and their methods.

    ``expose`` limits what is served (``None``: every entry of a port with served methods).
    ``on_bind`` is called with each new `Bound` (the portal attaches its counters).
    """

    def __init__(
        self,
        registry: Registry,
        expose: list[str] | None = None,
        on_bind: Callable[[Bound], None] | None = None,
    ) -> None:
        self.registry = registry
        self.expose = None if expose is None else frozenset(expose)
        self._on_bind = on_bind
        self._entries: dict[str, ServedEntry] = {}

    def names(self) -> list[str]:
        """The served entry names, in registry order."""
        out = []
        for name in self.registry.names():
            if self.expose is not None and name not in self.expose:
                continue
            port = self.registry.metadata(name).port
            if port.is_async and any(s.remote for s in methods_of(port.key).values()):
                out.append(name)
        return out

    def entry(self, name: str) -> ServedEntry:
        """The served entry ``name``; raises NotFoundError when it is not served."""
        served = self._entries.get(name)
        if served is not None:
            try:
                current = self.registry.get(served.port.protocol, name)
            except NotFoundError:
                current = None
            if current is served.adapter and handle_target(current) is served.target:
                return served
            self._entries.pop(name, None)
        if self.expose is not None and name not in self.expose:
            raise NotFoundError(f"no served entry named {name!r}", key=name)
        try:
            port = self.registry.metadata(name).port
        except NotFoundError:
            raise NotFoundError(f"no served entry named {name!r}", key=name) from None
        specs = methods_of(port.key) if port.is_async else {}
        if not any(s.remote for s in specs.values()):
            raise NotFoundError(f"no served entry named {name!r}", key=name)
        adapter = self.registry.get(port.protocol, name)
        served = ServedEntry(name, port, adapter, {}, handle_target(adapter))
        declared = capabilities_of(adapter)
        for method, spec in specs.items():
            if not spec.remote:
                continue
            target = getattr(adapter, method, None)
            if spec.capability is not None and (
                spec.capability not in declared or not callable(target)
            ):
                target = _unsupported(spec)
            if target is None:
                continue
            forms = tuple((p.name, p.form.decode) for p in spec.params if p.form is not None)
            if forms:
                target = _decoding(target, forms)
            bound = Bound(
                name, spec, target, arguments_validator(spec), plain_arguments=_plain(spec)
            )
            if self._on_bind is not None:
                self._on_bind(bound)
            served.methods[method] = bound
        self._entries[name] = served
        return served

    def bound(self, entry: str, method: str) -> Bound:
        """The method ``method`` of entry ``entry``; raises NotFoundError."""
        served = self.entry(entry)
        found = served.methods.get(method)
        if found is None:
            raise NotFoundError(f"entry {entry!r} has no method {method!r}", key=method)
        return found

    def describe(self, name: str) -> Mapping[str, Any]:
        """What a remote adapter needs to know about a served entry."""
        served = self.entry(name)
        return {
            "entry": name,
            "port": served.port.key,
            "capabilities": sorted(served.capabilities),
            "methods": {
                m: {"kind": b.spec.kind.value, "read_only": b.spec.read_only}
                for m, b in served.methods.items()
            },
        }


__all__ += ["CallKind"]
