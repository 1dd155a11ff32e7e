"""How the kit runs async code: one private event loop per test, in the test's own thread.

See docs/decisions on the kit's event loop. The kit never relies on pytest-asyncio: every
``async def`` contract test is turned into a plain function that runs its coroutine on a
`LoopRunner`, so pytest-asyncio (in any mode) sees a synchronous test and leaves it
alone, and a third party needs no async plugin at all.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from portfolio_core.ports.lifecycle import close_adapter

__all__ = [
    "DEFAULT_TIMEOUT",
    "LoopRunner",
    "accepts_keyword",
    "close_adapter",
    "open_adapter",
]

T = TypeVar("T")

#: seconds one ``LoopRunner.run`` may take before the kit fails the test instead of hanging
DEFAULT_TIMEOUT = 60.0


class LoopRunner:
    """Runs coroutines to completion on one private event loop.

    The loop is created lazily, is never installed as the thread's current loop (so it cannot
    disturb pytest-asyncio or the application), and keeps one ``contextvars`` context across
    ``run`` calls, so a tenant set in one call is visible in the next, as in one task.
    Every ``run`` is bounded by ``timeout`` seconds.
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, debug: bool = False) -> None:
        self._runner = asyncio.Runner(debug=debug, loop_factory=asyncio.new_event_loop)
        self.timeout = timeout
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop (created on first use)."""
        return self._runner.get_loop()

    def run(self, awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
        """Run ``awaitable`` to completion and return its result (or raise its exception).

        Raises ``TimeoutError`` after ``timeout`` (default: the runner's) seconds.
        Must not be called from inside a running event loop.
        """
        if self._closed:
            raise RuntimeError("this LoopRunner is closed")
        limit = self.timeout if timeout is None else timeout
        return self._runner.run(_bounded(awaitable, limit))

    def close(self) -> None:
        """Cancel leftover tasks, finish async generators and close the loop. Idempotent."""
        if not self._closed:
            self._closed = True
            self._runner.close()

    def __enter__(self) -> LoopRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _bounded(awaitable: Awaitable[T], limit: float) -> T:
    try:
        async with asyncio.timeout(limit):
            return await awaitable
    except TimeoutError as exc:
        raise TimeoutError(
            f"the kit stopped an async call after {limit} s (a hang, a lost wake-up or a "
            "deadlock in the adapter?)"
        ) from exc


def accepts_keyword(factory: Callable[..., object], name: str) -> bool:
    """Whether ``factory`` names a parameter ``name`` that can be passed by keyword.

    ``**kwargs`` does not count: the kit passes ``clock=`` (and other offers) only to
    factories that ask for them by name.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    param = signature.parameters.get(name)
    return param is not None and param.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


async def open_adapter(factory: Callable[..., Any], **offers: object) -> Any:
    """Create an adapter inside the running loop and start it.

    Each keyword in ``offers`` (``clock=...``) is passed only when the factory accepts it by
    name. The factory may return the adapter or an awaitable of it. ``start()`` is called
    (and awaited when it returns an awaitable) if the adapter has one.
    """
    kwargs = {k: v for k, v in offers.items() if accepts_keyword(factory, k)}
    made = factory(**kwargs)
    if inspect.isawaitable(made):
        made = await made
    start = getattr(made, "start", None)
    if callable(start):
        started = start()
        if inspect.isawaitable(started):
            await started
    return made
