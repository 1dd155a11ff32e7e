"""Stable handles a hot-reloadable registry hands out: they follow reloads and count calls.

A handle forwards every attribute to its entry's current adapter. Methods are wrapped so
that each call is counted against the adapter it started on (async methods until they
return, async generators until they are exhausted or closed); a reload points the handle at
the new adapter and waits until the old one has no call in flight before closing it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["Handle", "handle_target"]


class _Generation:
    """One adapter behind a handle and the calls in flight on it."""

    __slots__ = ("active", "target")

    def __init__(self, target: object) -> None:
        self.target = target
        self.active = 0

    async def drained(self, timeout: float) -> bool:
        """Wait until no call is in flight (polling; calls may finish in other threads);
        ``False`` when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self.active > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True


class Handle:
    """Forwards to the current adapter of one registry entry (see the module docstring)."""

    __slots__ = ("__dict__", "_pc_gen")

    def __init__(self, target: object) -> None:
        self._pc_gen = _Generation(target)

    def _pc_retarget(self, target: object) -> _Generation:
        """Point at ``target``; return the generation of the previous adapter."""
        old = self._pc_gen
        self._pc_gen = _Generation(target)
        self.__dict__.clear()  # wrappers were made for the old adapter's methods
        return old

    def __getattr__(self, name: str) -> Any:
        target = self._pc_gen.target
        value = getattr(target, name)
        if name.startswith("__") or not callable(value):
            return value
        static = inspect.getattr_static(target, name, None)
        func = getattr(static, "__func__", static)
        if inspect.isasyncgenfunction(func) or inspect.isasyncgenfunction(value):
            wrapper: Callable[..., Any] = self._async_gen(name)
        elif inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(value):
            wrapper = self._coroutine(name)
        else:
            return value  # sync methods and objects: no call to wait for
        self.__dict__[name] = wrapper
        return wrapper

    def _coroutine(self, name: str) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            gen = self._pc_gen
            gen.active += 1
            try:
                return await getattr(gen.target, name)(*args, **kwargs)
            finally:
                gen.active -= 1

        return functools.update_wrapper(call, getattr(self._pc_gen.target, name))

    def _async_gen(self, name: str) -> Callable[..., Any]:
        async def iterate(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            gen = self._pc_gen
            gen.active += 1
            try:
                async for item in getattr(gen.target, name)(*args, **kwargs):
                    yield item
            finally:
                gen.active -= 1

        return functools.update_wrapper(iterate, getattr(self._pc_gen.target, name))

    def __repr__(self) -> str:
        return f"<handle of {self._pc_gen.target!r}>"


def handle_target(handle: object) -> object:
    """The adapter a handle currently forwards to (the object itself when not a handle)."""
    return handle._pc_gen.target if isinstance(handle, Handle) else handle
