"""What a port protocol declares, and whether a class or an instance provides it.

One set of rules, used by everything that reads a protocol: the manifest loader and
``Registry.register`` (conformance checks at load), the boundary proxy (which members to
wrap) and the conformance kit (``kit.adapter.implements_port``). Standard library only.

The rules, for every public name (no leading underscore) a protocol or one of its protocol
bases declares:

* an annotation without a value (``name: int``) and a ``@property`` are **attributes**: they
  are looked up on the instance, never called by the boundary;
* a function is a **method**; ``@classmethod`` and ``@staticmethod`` are methods too (their
  kind is that of the function they wrap), recorded with their ``Binding``;
* a method's kind is ``MemberKind.COROUTINE`` for ``async def``,
  ``MemberKind.ASYNC_ITERATOR`` for an async generator or a ``def`` annotated to return
  ``AsyncIterator``/``AsyncGenerator``/``AsyncIterable``, and ``MemberKind.SYNC``
  otherwise.

An implementation satisfies a method when it has a callable of that name whose ``async``-ness
matches: a coroutine member needs ``async def``; sync and async-iterator members must not be
coroutine functions (an async generator or a plain ``def`` returning an async iterator are
both fine for an async-iterator member).
"""

from __future__ import annotations

import inspect
import weakref
from dataclasses import dataclass
from enum import Enum
from functools import cache

__all__ = [
    "Binding",
    "Member",
    "MemberKind",
    "check_class",
    "check_instance",
    "members_of",
    "method_names",
]

_ASYNC_ITER_NAMES = ("AsyncIterator", "AsyncGenerator", "AsyncIterable")


class MemberKind(Enum):
    """What a protocol member is, as far as calling it goes."""

    COROUTINE = "coroutine"
    ASYNC_ITERATOR = "async_iterator"
    SYNC = "sync"
    ATTRIBUTE = "attribute"


class Binding(Enum):
    """How a member is declared on the protocol."""

    METHOD = "method"
    CLASSMETHOD = "classmethod"
    STATICMETHOD = "staticmethod"
    PROPERTY = "property"
    DATA = "data"


@dataclass(frozen=True, slots=True)
class Member:
    """One public member of a protocol."""

    name: str
    kind: MemberKind
    binding: Binding

    @property
    def is_method(self) -> bool:
        """True for everything that is called (all kinds but attributes)."""
        return self.kind is not MemberKind.ATTRIBUTE


def _returns_async_iterator(fn: object) -> bool:
    if inspect.isasyncgenfunction(fn):
        return True
    ann = getattr(fn, "__annotations__", {}).get("return")
    if ann is None:
        return False
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
    text = text.split("[", 1)[0].rsplit(".", 1)[-1].strip()
    return text in _ASYNC_ITER_NAMES


def _function_kind(fn: object) -> MemberKind:
    if inspect.iscoroutinefunction(fn):
        return MemberKind.COROUTINE
    if _returns_async_iterator(fn):
        return MemberKind.ASYNC_ITERATOR
    return MemberKind.SYNC


def _is_protocol_class(klass: type) -> bool:
    return (
        klass is not object
        and klass.__module__ != "typing"
        and bool(getattr(klass, "_is_protocol", False))
    )


@cache
def members_of(protocol: type) -> tuple[Member, ...]:
    """The public members of ``protocol`` and its protocol bases, sorted by name.

    A name redeclared in a subprotocol takes the subprotocol's declaration. Raises
    ``TypeError`` when ``protocol`` is not a ``typing.Protocol`` class.
    """
    if not (isinstance(protocol, type) and _is_protocol_class(protocol)):
        raise TypeError(f"{protocol!r} is not a typing.Protocol class")
    found: dict[str, Member] = {}
    for klass in reversed(protocol.__mro__):
        if not _is_protocol_class(klass):
            continue
        for name in inspect.get_annotations(klass):
            if not name.startswith("_"):
                found[name] = Member(name, MemberKind.ATTRIBUTE, Binding.DATA)
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, property):
                found[name] = Member(name, MemberKind.ATTRIBUTE, Binding.PROPERTY)
            elif isinstance(value, classmethod):
                found[name] = Member(name, _function_kind(value.__func__), Binding.CLASSMETHOD)
            elif isinstance(value, staticmethod):
                found[name] = Member(name, _function_kind(value.__func__), Binding.STATICMETHOD)
            elif inspect.isfunction(value):
                found[name] = Member(name, _function_kind(value), Binding.METHOD)
    return tuple(sorted(found.values(), key=lambda m: m.name))


@cache
def _attributes_of(protocol: type) -> tuple[Member, ...]:
    return tuple(m for m in members_of(protocol) if not m.is_method)


def method_names(protocol: type) -> list[str]:
    """Names of every member that is called (everything but attributes), sorted."""
    return [m.name for m in members_of(protocol) if m.is_method]


_CLASS_CHECKS: weakref.WeakKeyDictionary[type, dict[type, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def check_class(cls: type, protocol: type) -> list[str]:
    """Problems with ``cls``'s methods against ``protocol``: a missing method, something
    that is not callable, or ``async def`` where the member is sync (or the reverse).

    Returns an empty list when ``cls`` fits. Attributes and properties are not checked here:
    they may be set in ``__init__`` (see ``check_instance``). Computed once per class
    and protocol.
    """
    per_protocol = _CLASS_CHECKS.setdefault(cls, {})
    if protocol not in per_protocol:
        per_protocol[protocol] = _check_class(cls, protocol)
    return list(per_protocol[protocol])


def _check_class(cls: type, protocol: type) -> tuple[str, ...]:
    port = protocol.__name__
    problems: list[str] = []
    for member in members_of(protocol):
        if not member.is_method:
            continue
        name = member.name
        try:
            attr = inspect.getattr_static(cls, name)
        except AttributeError:
            problems.append(f"{cls.__name__} does not implement {port}: missing {name}()")
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        function = inspect.unwrap(attr) if callable(attr) else attr
        if not callable(function):
            problems.append(f"{cls.__name__}.{name} must be a method ({port} declares one)")
        elif member.kind is MemberKind.COROUTINE and not inspect.iscoroutinefunction(function):
            problems.append(f"{cls.__name__}.{name} must be 'async def': {port}.{name} is async")
        elif member.kind is MemberKind.SYNC and inspect.iscoroutinefunction(function):
            problems.append(f"{cls.__name__}.{name} must not be 'async def': {port}.{name} is sync")
        elif member.kind is MemberKind.ASYNC_ITERATOR and inspect.iscoroutinefunction(function):
            problems.append(
                f"{cls.__name__}.{name} must not be a coroutine: {port}.{name} returns an async "
                "iterator (write 'async def' with 'yield', or a 'def' returning one)"
            )
    return tuple(problems)


def check_instance(instance: object, protocol: type) -> list[str]:
    """Problems with the attributes and properties ``protocol`` declares, on ``instance``:
    each must be readable on the instance or annotated on its class. Methods are checked by
    ``check_class``."""
    problems: list[str] = []
    annotated: set[str] | None = None
    for member in _attributes_of(protocol):
        try:
            inspect.getattr_static(instance, member.name)
        except AttributeError:
            if annotated is None:
                annotated = _annotations(type(instance))
            if member.name not in annotated:
                problems.append(
                    f"{type(instance).__name__} does not implement {protocol.__name__}: "
                    f"missing attribute {member.name!r}"
                )
    return problems


def _annotations(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        names.update(inspect.get_annotations(klass))
    return names
