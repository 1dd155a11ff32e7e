"""What each async port's methods are on the wire, read once from the protocols.

Every member of an async port protocol is classified by `methods_of`:

* ``CALL``: a coroutine whose arguments and result can be written as JSON: one request, one
  response;
* ``ITERATE``: a method returning an async iterator of JSON-writable items: one request, a
  stream of items pulled with credit;
* ``SUBSCRIBE``: a coroutine taking a handler (a callable) and returning a subscription handle:
  the handler stays with the caller, the server pushes items with credit, and the caller can
  resume after the last item its handler finished;
* ``UNSUBSCRIBE``: ends such a subscription (done by the caller);
* ``LOCAL``: computed in the caller's process and never sent: sync members (the tenant's
  context helpers) and methods that take a callable and a local iterable (``transform``).

Arguments typed as "an iterable or an async iterable" are materialised into a JSON list by the
caller. Capability methods that are not in the base protocol (``Cache.keys``, ``Stream.count``)
are listed with the capability that offers them.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from typing import Any, Protocol, Union

from portfolio_core.ports.cache import CacheCapability, EnumerableCache
from portfolio_core.ports.catalogue import PORTS, PortInfo, port_by_key
from portfolio_core.ports.event_store import Subscription
from portfolio_core.ports.introspection import MemberKind, members_of
from portfolio_core.ports.job_queue import InspectableJobQueue, JobQueueCapability
from portfolio_core.ports.stream import StreamCapability
from portfolio_core.wire._forms import FORMS, WireForm

__all__ = ["CallKind", "MethodSpec", "Param", "SubscriptionSpec", "methods_of", "served_ports"]


class CallKind(StrEnum):
    """How a method crosses the wire (see the module docstring)."""

    CALL = "call"
    ITERATE = "iterate"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its wire type, whether the caller must pass it, and whether it is an
    (async) iterable the caller sends as a list."""

    name: str
    hint: Any
    required: bool
    keyword_only: bool
    materialise: bool = False
    form: WireForm | None = None
    """How the value crosses the wire when JSON cannot carry it as it is (``hint`` is then
    the form's JSON shape; see ``_forms``)."""


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """Where a subscription method keeps its handler, the argument that resumes it and the
    item attribute that is its checkpoint."""

    handler: str
    resume: str
    position: str
    local: tuple[str, ...] = ()
    """Arguments applied by the caller (never sent), e.g. the handler-error policy."""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One method of a port as the portal serves it and a remote adapter calls it."""

    port: str
    name: str
    kind: CallKind
    params: tuple[Param, ...]
    result: Any
    """The wire type of the result (``CALL``) or of each item (``ITERATE``, ``SUBSCRIBE``)."""
    read_only: bool
    """Whether the method leaves what is stored unchanged (a read-only key may call it)."""
    capability: str | None = None
    """The capability that offers the method when the base protocol does not declare it."""
    subscription: SubscriptionSpec | None = None
    credit_from: tuple[str, str] | None = None
    """For ``ITERATE``: the argument and attribute bounding how many items are fetched ahead."""
    demand_when: tuple[str, str] | None = None
    """For ``ITERATE``: the argument and attribute which, when set, make the caller fetch
    one item per request for it (no fetching ahead)."""
    resume_from: tuple[str, str] | None = None
    """For ``ITERATE``: the argument that starts the iteration after a position and the item
    attribute holding each item's position; a caller whose connection is lost reopens the
    iteration after the last item it got."""
    waits: str | None = None
    """For ``CALL``: the argument (seconds) the server may wait before answering (a
    blocking ``reserve``); the caller extends its timeout by it."""
    doc: str = ""
    signature: inspect.Signature | None = field(default=None, compare=False, repr=False)
    """The protocol method's own signature (with its defaults)."""

    @property
    def remote(self) -> bool:
        """Whether calls cross the wire (``CALL``, ``ITERATE`` and ``SUBSCRIBE``)."""
        return self.kind in (CallKind.CALL, CallKind.ITERATE, CallKind.SUBSCRIBE)


class StreamInspection(Protocol):
    """The methods capability ``stream.inspect`` adds to a Stream adapter."""

    async def sources(self) -> list[str]:
        """The current namespace's source names, sorted."""
        ...

    async def count(self, source: str) -> int:
        """Messages ``source`` retains; 0 when it does not exist."""
        ...


#: capability methods outside the base protocols: port key -> (capability, protocol)
_EXTENSIONS: dict[str, tuple[tuple[str, type], ...]] = {
    "cache": ((CacheCapability.ENUMERATE.value, EnumerableCache),),
    "stream": ((StreamCapability.INSPECT.value, StreamInspection),),
    "job_queue": ((JobQueueCapability.INSPECT.value, InspectableJobQueue),),
}

#: methods that leave what is stored unchanged; every other method counts as a write
_READ_ONLY: dict[str, frozenset[str]] = {
    "cache": frozenset({"get", "exists", "get_many", "keys", "count"}),
    "event_store": frozenset({"read", "read_all", "query", "subscribe", "unsubscribe"}),
    "stream": frozenset({"stream", "transform", "sources", "count"}),
    "llm": frozenset({"complete", "stream"}),
    "router": frozenset({"route", "health_check", "list_providers", "complete"}),
    "agent": frozenset({"available_tools"}),
    "pipeline_step": frozenset({"validate_input"}),
    "tenant": frozenset({"get_context", "set_context", "reset_context", "with_tenant"}),
    "config_store": frozenset({"current_version", "get", "read", "history", "watch"}),
    "job_queue": frozenset({"get", "list_jobs", "counts", "queues"}),
}

#: iterate methods that resume after a lost connection: (argument, item attribute)
_RESUME: dict[tuple[str, str], tuple[str, str]] = {
    ("config_store", "watch"): ("from_version", "version"),
}
#: calls that may wait on the server by design: the argument holding the seconds
_WAITS: dict[tuple[str, str], str] = {
    ("job_queue", "reserve"): "wait",
}

_SUBSCRIPTIONS: dict[tuple[str, str], SubscriptionSpec] = {
    ("event_store", "subscribe"): SubscriptionSpec(
        "handler", "from_position", "position", ("on_error",)
    ),
}

#: iterate methods whose prefetch the caller bounds by an option: (argument, attribute)
_CREDIT: dict[tuple[str, str], tuple[str, str]] = {
    ("stream", "stream"): ("opts", "buffer_size"),
}
#: iterate methods that must not fetch ahead at all when an option is set, because fetching
#: an item has an effect (a group read makes the message pending with this consumer):
#: (argument, attribute)
_DEMAND: dict[tuple[str, str], tuple[str, str]] = {
    ("stream", "stream"): ("opts", "group"),
}


def _is_callable_hint(hint: Any) -> bool:
    return typing.get_origin(hint) is collections.abc.Callable or hint is collections.abc.Callable


def _union_args(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin is Union or type(hint).__name__ == "UnionType":
        return typing.get_args(hint)
    return ()


def _iterable_item(hint: Any) -> Any | None:
    """The item type when ``hint`` is (or is a union of) AsyncIterable/Iterable types."""
    arms = _union_args(hint) or (hint,)
    items = []
    for arm in arms:
        origin = typing.get_origin(arm)
        if origin in (collections.abc.AsyncIterable, collections.abc.Iterable):
            args = typing.get_args(arm)
            items.append(args[0] if args else Any)
        else:
            return None
    return items[0] if items else None


def _is_async_source(hint: Any) -> bool:
    arms = _union_args(hint) or (hint,)
    return any(
        typing.get_origin(arm) in (collections.abc.AsyncIterable, collections.abc.AsyncIterator)
        for arm in arms
    )


def _writable(hint: Any) -> bool:
    """Whether values of ``hint`` can be written as JSON (no protocols, callables or
    context tokens anywhere in it)."""
    if hint is Any or hint is None or hint is type(None):
        return True
    if _is_callable_hint(hint):
        return False
    if isinstance(hint, type) and getattr(hint, "_is_protocol", False):
        return False
    if isinstance(hint, typing.TypeVar):
        return True
    return all(_writable(arg) for arg in typing.get_args(hint) if arg is not Ellipsis)


def _returned_item(hint: Any) -> Any:
    args = typing.get_args(hint)
    return args[0] if args else Any


def _hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # an unresolvable annotation: the method cannot be described
        return {}


def _spec(
    port: PortInfo, name: str, kind: MemberKind, owner: type, capability: str | None
) -> MethodSpec | None:
    function = getattr(owner, name)
    hints = _hints(function)
    signature = inspect.signature(function)
    params: list[Param] = []
    callables: list[str] = []
    handle_param = False
    async_source = False
    for param in list(signature.parameters.values())[1:]:
        hint = hints.get(param.name, Any)
        if _is_callable_hint(hint):
            callables.append(param.name)
            continue
        if hint is Subscription:
            handle_param = True
        if kind is MemberKind.ASYNC_ITERATOR and _is_async_source(hint):
            async_source = True
        item = _iterable_item(hint)
        form = FORMS.get((port.key, name, param.name))
        if form is not None:
            hint, item = form.hint, None
        params.append(
            Param(
                param.name,
                list[item] if item is not None else hint,  # type: ignore[valid-type]
                param.default is inspect.Parameter.empty,
                param.kind is inspect.Parameter.KEYWORD_ONLY,
                item is not None,
                form,
            )
        )
    result = hints.get("return", Any)
    base = MethodSpec(
        port.key,
        name,
        CallKind.CALL,
        tuple(params),
        result,
        read_only=name in _READ_ONLY.get(port.key, frozenset()),
        capability=capability,
        waits=_WAITS.get((port.key, name)),
        doc=inspect.getdoc(function) or "",
        signature=signature,
    )
    if kind is MemberKind.SYNC or (
        kind is MemberKind.ASYNC_ITERATOR and (callables or async_source)
    ):
        return replace(base, kind=CallKind.LOCAL)
    if kind is MemberKind.ASYNC_ITERATOR:
        if not all(_writable(p.hint) for p in params):
            return None
        return replace(
            base,
            kind=CallKind.ITERATE,
            result=_returned_item(result),
            credit_from=_CREDIT.get((port.key, name)),
            demand_when=_DEMAND.get((port.key, name)),
            resume_from=_RESUME.get((port.key, name)),
        )
    sub = _SUBSCRIPTIONS.get((port.key, name))
    if sub is not None:
        handler_hint = hints.get(sub.handler)
        item = typing.get_args(handler_hint)[0][0] if handler_hint is not None else Any
        kept = tuple(p for p in params if p.name not in sub.local)
        return replace(base, kind=CallKind.SUBSCRIBE, params=kept, result=item, subscription=sub)
    if handle_param:
        return replace(base, kind=CallKind.UNSUBSCRIBE)
    if callables or not all(_writable(p.hint) for p in params) or not _writable(result):
        return None  # it takes or returns something that cannot be written as JSON
    return base


@cache
def methods_of(port_key: str) -> Mapping[str, MethodSpec]:
    """Every method of the port ``port_key`` (and of its capability extensions) that has a
    wire meaning, by name. Raises ``KeyError`` for an unknown port."""
    port = port_by_key(port_key)
    found: dict[str, MethodSpec] = {}
    owners: list[tuple[type, str | None]] = [(port.protocol, None)]
    owners += [(proto, cap) for cap, proto in _EXTENSIONS.get(port_key, ())]
    for owner, capability in owners:
        for member in members_of(owner):
            name, kind = member.name, member.kind
            if name in found or kind is MemberKind.ATTRIBUTE:
                continue
            spec = _spec(port, name, kind, owner, capability)
            if spec is not None:
                found[name] = spec
    return found


@cache
def served_ports() -> tuple[PortInfo, ...]:
    """The async ports whose members are all either served or computed locally: a remote
    adapter of them is complete (attributes and callable-taking coroutines are not)."""
    out = []
    for port in PORTS:
        if not port.is_async:
            continue
        specs = methods_of(port.key)
        if all(member.name in specs for member in members_of(port.protocol)):
            out.append(port)
    return tuple(out)
