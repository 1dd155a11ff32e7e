"""Handlers registered by task name: a decorator, or ``module:function`` strings."""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from portfolio_core.ports.errors import InvalidInputError, NotFoundError
from portfolio_core.ports.job_queue import Job

__all__ = ["Handler", "Handlers", "default_handlers", "task"]

F = TypeVar("F", bound=Callable[..., Any])
#: what the worker calls: ``await handler(payload, job)``
Handler = Callable[[Any, Job], Awaitable[Any]]


def _adapt(fn: Callable[..., Any]) -> Handler:
    """Call ``fn(payload)`` or ``fn(payload, job=job)``; a plain function runs in a thread."""
    wants_job = "job" in inspect.signature(fn).parameters
    if inspect.iscoroutinefunction(fn):

        async def run_async(payload: Any, job: Job) -> Any:
            return await (fn(payload, job=job) if wants_job else fn(payload))

        return run_async

    async def run_sync(payload: Any, job: Job) -> Any:
        call = (
            functools.partial(fn, payload, job=job) if wants_job else functools.partial(fn, payload)
        )
        return await asyncio.to_thread(call)

    return run_sync


class Handlers:
    """Task name -> handler. A handler takes the job's payload (and ``job=`` if it names
    that parameter); ``async def`` handlers run on the worker's loop, plain functions in a
    thread. Registering a name twice with different functions raises InvalidInputError."""

    def __init__(self) -> None:
        self._fns: dict[str, Callable[..., Any]] = {}
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        if not name or not isinstance(name, str):
            raise InvalidInputError("a handler needs a non-empty task name", field="name")
        if not callable(fn):
            raise InvalidInputError(f"handler {name!r} is not callable", field=name)
        known = self._fns.get(name)
        if known is not None and known is not fn:
            raise InvalidInputError(
                f"task {name!r} already has the handler {known.__module__}.{known.__qualname__}",
                field=name,
            )
        self._fns[name] = fn
        self._handlers[name] = _adapt(fn)

    def task(self, name: str | None = None) -> Callable[[F], F]:
        """Decorator registering a function under ``name`` (default: its ``__name__``)."""

        def decorate(fn: F) -> F:
            self.register(name or fn.__name__, fn)
            return fn

        return decorate

    def register_paths(self, paths: Mapping[str, str]) -> None:
        """Register ``{task: "package.module:function"}``, importing each module."""
        for name, path in paths.items():
            module_name, _, attr = path.partition(":")
            if not module_name or not attr:
                raise InvalidInputError(
                    f"handler {name!r}: {path!r} is not 'package.module:function'", field=name
                )
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise InvalidInputError(
                    f"handler {name!r}: cannot import {module_name!r}: {exc}", field=name
                ) from exc
            fn = getattr(module, attr, None)
            if fn is None:
                raise InvalidInputError(f"handler {name!r}: {path!r} does not exist", field=name)
            self.register(name, fn)

    def get(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise NotFoundError(f"no handler registered for task {name!r}", key=name) from None

    def merged(self, other: Handlers) -> Handlers:
        out = Handlers()
        for source in (self, other):
            for name, fn in source._fns.items():
                out.register(name, fn)
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._handlers))

    def __len__(self) -> int:
        return len(self._handlers)


default_handlers = Handlers()
#: ``@task("send_email")`` registers in `default_handlers`, which the worker command uses
task = default_handlers.task
