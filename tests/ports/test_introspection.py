"""One set of rules for reading a port protocol: what each member is, and what satisfies it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from portfolio_core.ports import PORTS
from portfolio_core.ports.introspection import (
    Binding,
    Member,
    MemberKind,
    check_class,
    check_instance,
    members_of,
    method_names,
)


class Base(Protocol):
    version: int

    async def fetch(self, key: str) -> str: ...


class Sample(Base, Protocol):
    label: str

    @property
    def size(self) -> int: ...

    @classmethod
    def build(cls) -> Sample: ...

    @classmethod
    async def abuild(cls) -> Sample: ...

    @staticmethod
    def parse(text: str) -> int: ...

    @staticmethod
    async def aparse(text: str) -> int: ...

    def count(self) -> int: ...

    async def events(self) -> AsyncIterator[int]:
        yield 0  # an async generator declared in the protocol itself

    def stream(self) -> AsyncIterator[int]: ...

    def _private(self) -> None: ...


def by_name(protocol: type) -> dict[str, Member]:
    return {m.name: m for m in members_of(protocol)}


def test_every_member_has_one_kind_and_binding() -> None:
    got = {name: (m.kind, m.binding) for name, m in by_name(Sample).items()}
    assert got == {
        "version": (MemberKind.ATTRIBUTE, Binding.DATA),
        "label": (MemberKind.ATTRIBUTE, Binding.DATA),
        "size": (MemberKind.ATTRIBUTE, Binding.PROPERTY),
        "build": (MemberKind.SYNC, Binding.CLASSMETHOD),
        "abuild": (MemberKind.COROUTINE, Binding.CLASSMETHOD),
        "parse": (MemberKind.SYNC, Binding.STATICMETHOD),
        "aparse": (MemberKind.COROUTINE, Binding.STATICMETHOD),
        "count": (MemberKind.SYNC, Binding.METHOD),
        "fetch": (MemberKind.COROUTINE, Binding.METHOD),
        "events": (MemberKind.ASYNC_ITERATOR, Binding.METHOD),
        "stream": (MemberKind.ASYNC_ITERATOR, Binding.METHOD),
    }


def test_members_are_sorted_and_methods_exclude_attributes() -> None:
    names = [m.name for m in members_of(Sample)]
    assert names == sorted(names)
    assert method_names(Sample) == [
        "abuild",
        "aparse",
        "build",
        "count",
        "events",
        "fetch",
        "parse",
        "stream",
    ]


def test_a_subprotocol_redeclaring_a_member_wins() -> None:
    class Narrow(Base, Protocol):
        def fetch(self, key: str) -> str: ...  # type: ignore[override]

    assert by_name(Narrow)["fetch"].kind is MemberKind.SYNC
    assert by_name(Base)["fetch"].kind is MemberKind.COROUTINE


def test_a_class_that_is_not_a_protocol_is_rejected() -> None:
    class Plain:
        def run(self) -> None: ...

    with pytest.raises(TypeError, match=r"not a typing\.Protocol"):
        members_of(Plain)


class Good:
    version = 1

    def __init__(self) -> None:
        self.label = "x"

    @property
    def size(self) -> int:
        return 0

    @classmethod
    def build(cls) -> Good:
        return cls()

    @classmethod
    async def abuild(cls) -> Good:
        return cls()

    @staticmethod
    def parse(text: str) -> int:
        return len(text)

    @staticmethod
    async def aparse(text: str) -> int:
        return len(text)

    def count(self) -> int:
        return 0

    async def fetch(self, key: str) -> str:
        return key

    async def events(self) -> AsyncIterator[int]:
        yield 1

    def stream(self) -> AsyncIterator[int]:  # a plain def returning an async iterator
        return self.events()


def test_a_class_with_every_member_passes() -> None:
    assert check_class(Good, Sample) == []
    assert check_instance(Good(), Sample) == []


def test_an_attribute_only_annotated_on_the_class_counts() -> None:
    class Annotated(Good):
        label: str

        def __init__(self) -> None:
            """Does not set ``label``: the annotation promises it."""

    assert check_instance(Annotated(), Sample) == []


@pytest.mark.parametrize(
    ("name", "replacement", "message"),
    [
        ("fetch", None, "does not implement Sample: missing fetch()"),
        ("fetch", lambda self, key: key, "Bad.fetch must be 'async def': Sample.fetch is async"),
        ("count", 3, "Bad.count must be a method (Sample declares one)"),
        ("abuild", classmethod(lambda cls: cls), "Bad.abuild must be 'async def'"),
        ("build", classmethod(Good.abuild.__func__), "Bad.build must not be 'async def'"),
        ("parse", staticmethod(Good.aparse), "Bad.parse must not be 'async def'"),
        ("aparse", staticmethod(Good.parse), "Bad.aparse must be 'async def'"),
        ("events", Good.fetch, "Bad.events must not be a coroutine: Sample.events returns"),
    ],
)
def test_a_class_with_a_wrong_member_is_named(name: str, replacement: object, message: str) -> None:
    if replacement is None:  # Good without the member
        kept = {k: v for k, v in vars(Good).items() if k != name and not k.startswith("__")}
        bad = type("Bad", (), kept)
    else:
        bad = type("Bad", (Good,), {name: replacement})
    problems = check_class(bad, Sample)
    assert len(problems) == 1, problems
    assert message in problems[0]


def test_a_missing_attribute_or_property_is_named_on_the_instance() -> None:
    class NoLabel(Good):
        def __init__(self) -> None:
            """Sets nothing."""

    assert check_instance(NoLabel(), Sample) == [
        "NoLabel does not implement Sample: missing attribute 'label'"
    ]


def test_a_member_wrapped_by_a_decorator_is_judged_by_the_wrapped_function() -> None:
    import functools

    def logged(fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            return fn(*args, **kwargs)

        return wrapper

    class Decorated(Good):
        @logged
        async def fetch(self, key: str) -> str:
            return key

    assert check_class(Decorated, Sample) == []


@pytest.mark.parametrize("port", PORTS, ids=lambda p: p.key)
def test_every_port_has_methods_and_one_kind_per_method(port: object) -> None:
    protocol = port.protocol  # type: ignore[attr-defined]
    members = members_of(protocol)
    assert method_names(protocol), f"{protocol.__name__} declares no method"
    if port.is_async:  # type: ignore[attr-defined]
        assert any(m.kind is MemberKind.COROUTINE for m in members)
    else:
        assert not any(m.kind is MemberKind.COROUTINE for m in members)
