"""Decide once per protocol what each member is: a coroutine function, an async iterator, a
plain (sync) method, or a data attribute/property to forward."""

from __future__ import annotations

import inspect
from enum import Enum
from functools import cache
from typing import Protocol

__all__ = ["MemberKind", "members_of"]

_ASYNC_ITER_NAMES = ("AsyncIterator", "AsyncGenerator", "AsyncIterable")


class MemberKind(Enum):
    COROUTINE = "coroutine"
    ASYNC_ITERATOR = "async_iterator"
    SYNC = "sync"
    ATTRIBUTE = "attribute"


def _returns_async_iterator(fn: object) -> bool:
    if inspect.isasyncgenfunction(fn):
        return True
    ann = getattr(fn, "__annotations__", {}).get("return")
    if ann is None:
        return False
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
    text = text.rsplit(".", 1)[-1] if "[" not in text else text.split("[", 1)[0].rsplit(".")[-1]
    return text in _ASYNC_ITER_NAMES


@cache
def members_of(protocol: type) -> tuple[tuple[str, MemberKind], ...]:
    """The public members of ``protocol`` (and its protocol bases) with their kind."""
    found: dict[str, MemberKind] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object, Protocol) or klass.__module__ == "typing":
            continue
        for name in getattr(klass, "__annotations__", {}):
            if not name.startswith("_"):
                found[name] = MemberKind.ATTRIBUTE
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(value, property | classmethod | staticmethod):
                found[name] = MemberKind.ATTRIBUTE
            elif inspect.iscoroutinefunction(value):
                found[name] = MemberKind.COROUTINE
            elif inspect.isfunction(value):
                found[name] = (
                    MemberKind.ASYNC_ITERATOR if _returns_async_iterator(value) else MemberKind.SYNC
                )
    return tuple(sorted(found.items()))
