"""What every double shares: the call log, canned answers, and methods generated from the
port's protocol (so a port's signatures are written once, in ``ports``)."""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.introspection import MemberKind, members_of

P = TypeVar("P")
_NO_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded call: method name, positional and keyword arguments.

    ``args`` are the positional arguments as the caller passed them; ``kwargs`` holds every
    other parameter of the port method's signature by name: those passed by keyword and, for
    those omitted, their defaults.
    """

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class computed:
    """A scripted answer computed from the call's arguments."""

    fn: Callable[..., Any]


@cache
def _signature(protocol: type, method: str) -> inspect.Signature | None:
    fn = getattr(protocol, method, None)
    if fn is None or not callable(fn):
        return None
    sig = inspect.signature(fn)
    kinds = {p.kind for p in sig.parameters.values()}
    if inspect.Parameter.VAR_POSITIONAL in kinds or inspect.Parameter.VAR_KEYWORD in kinds:
        return None
    return sig


def _normalised(
    protocol: type | None, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` as `Call` records them; a call that does not fit the port's
    signature raises ``TypeError`` as the real method would."""
    sig = _signature(protocol, method) if protocol is not None else None
    if sig is None:
        return args, dict(kwargs)
    bound = sig.bind(None, *args, **kwargs)
    bound.apply_defaults()
    positional = set(list(sig.parameters)[1 : 1 + len(args)])
    named = {k: v for k, v in bound.arguments.items() if k not in positional}
    named.pop(next(iter(sig.parameters)), None)  # self
    return args, named


class _Calls:
    """The call log every double keeps."""

    _port: ClassVar[type | None] = None

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def _log(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.calls.append(Call(method, *_normalised(self._port, method, args, kwargs)))

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of ``method``, in order."""
        return [c for c in self.calls if c.method == method]

    def called(self, method: str) -> bool:
        """Whether ``method`` was called at least once."""
        return any(c.method == method for c in self.calls)

    def reset_calls(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()


def _declared_by_hand(cls: type, name: str) -> bool:
    return any(name in vars(klass) for klass in cls.__mro__ if klass is not object)


def _generate(cls: type, port: type, make: Callable[[str, MemberKind], object | None]) -> None:
    """Give ``cls`` every member of ``port`` it does not declare itself."""
    for declared in members_of(port):
        if not _declared_by_hand(cls, declared.name):
            member = make(declared.name, declared.kind)
            if member is not None:
                setattr(cls, declared.name, member)


class _Scripted(_Calls):
    """Canned answers per method; see the package docstring.

    A subclass names its port (``class ScriptedCache(_Scripted, port=Cache)``); every port
    method it does not write by hand answers from the script.
    """

    _defaults: ClassVar[Mapping[str, Any]] = {}
    _capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, *, port: type | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if port is not None:
            cls._port = port
            _generate(cls, port, _scripted_member)

    def __init__(
        self,
        *,
        repeat: bool = False,
        capabilities: Iterable[str] | None = None,
        **answers: Iterable[Any],
    ) -> None:
        super().__init__()
        self._repeat = repeat
        self._answers: dict[str, deque[Any]] = {}
        self._last: dict[str, Any] = {}
        self.capabilities = frozenset(
            str(c) for c in (self._capabilities if capabilities is None else capabilities)
        )
        for method, values in answers.items():
            self.script(method, *values)

    def script(self, method: str, *answers: Any) -> None:
        """Queue more answers for ``method``."""
        if not callable(getattr(type(self), method, None)):
            raise AttributeError(f"{type(self).__name__} has no method {method!r} to script")
        self._answers.setdefault(method, deque()).extend(answers)

    def _scripted(self, method: str) -> bool:
        """Whether the next call of ``method`` answers from the script: an answer is queued,
        or, with ``repeat``, one was given before (hand-written methods fall back to their
        own behaviour only when this is false)."""
        return bool(self._answers.get(method)) or (self._repeat and method in self._last)

    def _answer(self, method: str, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = _normalised(self._port, method, args, kwargs)
        self.calls.append(Call(method, args, kwargs))
        queue = self._answers.get(method)
        if queue:
            answer = queue.popleft()
            self._last[method] = answer
        elif self._repeat and method in self._last:
            answer = self._last[method]
        else:
            answer = self._defaults.get(method, _NO_DEFAULT)
            if answer is _NO_DEFAULT:
                shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
                raise AssertionError(
                    f"unscripted call {type(self).__name__}.{method}({shown}); script it with "
                    f"{type(self).__name__}({method}=[...]) or .script({method!r}, ...)"
                )
            if callable(answer) and not isinstance(answer, computed):
                answer = answer()  # a factory of a fresh default ({} / [])
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, computed):
            return answer.fn(*args, **kwargs)
        return answer

    if TYPE_CHECKING:  # the port's methods are generated; type checkers see them as Any

        def __getattr__(self, name: str) -> Any: ...


def _scripted_member(name: str, kind: MemberKind) -> object | None:
    if kind is MemberKind.COROUTINE:

        async def coroutine(self: _Scripted, *args: Any, **kwargs: Any) -> Any:
            return self._answer(name, *args, **kwargs)

        method: Callable[..., Any] = coroutine
    elif kind is MemberKind.ASYNC_ITERATOR:

        async def iterator(self: _Scripted, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            for item in self._answer(name, *args, **kwargs):
                yield item

        method = iterator
    elif kind is MemberKind.SYNC:

        def sync(self: _Scripted, *args: Any, **kwargs: Any) -> Any:
            return self._answer(name, *args, **kwargs)

        method = sync
    else:
        return None  # attributes are set by the double's constructor
    method.__name__ = method.__qualname__ = name
    return method


class _Recording(_Calls, Generic[P]):
    """Forwards to ``target`` and records every call.

    A subclass names its port and the double it wraps when given no target
    (``class RecordingCache(_Recording[Cache], port=Cache, stand_alone=ScriptedCache)``);
    every port member is generated: methods record and forward, attributes forward.
    """

    _stand_alone: ClassVar[tuple[Callable[[], Any], ...]] = ()  # a tuple: never bound

    def __init_subclass__(
        cls,
        *,
        port: type | None = None,
        stand_alone: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if port is not None:
            cls._port = port
            cls._stand_alone = () if stand_alone is None else (stand_alone,)
            _generate(cls, port, _recording_member)

    def __init__(self, target: P | None = None) -> None:
        super().__init__()
        if target is None:
            if not self._stand_alone:
                raise TypeError(f"{type(self).__name__} needs an adapter to wrap")
            target = self._stand_alone[0]()
        self.target: P = target

    @property
    def capabilities(self) -> frozenset[str]:
        """The wrapped adapter's declaration, forwarded."""
        return capabilities_of(self.target)

    async def aclose(self) -> None:
        """Close the target (``aclose`` or ``close``) when it has one."""
        from portfolio_core.testing.loop import close_adapter

        await close_adapter(self.target)

    if TYPE_CHECKING:  # the port's members are generated; type checkers see them as Any

        def __getattr__(self, name: str) -> Any: ...


def _recording_member(name: str, kind: MemberKind) -> object:
    if kind is MemberKind.ATTRIBUTE:
        return property(
            lambda self: getattr(self.target, name),
            doc=f"The wrapped adapter's {name}, forwarded.",
        )
    if kind is MemberKind.COROUTINE:

        async def coroutine(self: _Recording[Any], *args: Any, **kwargs: Any) -> Any:
            self._log(name, args, kwargs)
            return await getattr(self.target, name)(*args, **kwargs)

        method: Callable[..., Any] = coroutine
    elif kind is MemberKind.ASYNC_ITERATOR:

        async def iterator(self: _Recording[Any], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            self._log(name, args, kwargs)
            async for item in getattr(self.target, name)(*args, **kwargs):
                yield item

        method = iterator
    else:

        def sync(self: _Recording[Any], *args: Any, **kwargs: Any) -> Any:
            self._log(name, args, kwargs)
            return getattr(self.target, name)(*args, **kwargs)

        method = sync
    method.__name__ = method.__qualname__ = name
    return method
