"""How an adapter is stopped: one rule for the registry, the manifest loader and the kit.

An adapter that holds resources has ``aclose()`` (a coroutine function) or ``close()`` (plain
or ``async``); one that holds none needs neither. When an adapter has both, ``aclose()`` is
the one called, and only it: ``close()`` of such an adapter is often its synchronous,
best-effort variant. Standard library only.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable

__all__ = ["close_adapter", "close_adapter_blocking"]


def _closer(adapter: object) -> object:
    closer = getattr(adapter, "aclose", None)
    if not callable(closer):
        closer = getattr(adapter, "close", None)
    return closer


async def close_adapter(adapter: object) -> None:
    """Release ``adapter``: ``await adapter.aclose()`` if it has one, else ``adapter.close()``
    (awaited when it returns an awaitable); nothing when it has neither. Exceptions from the
    adapter propagate."""
    closer = _closer(adapter)
    if callable(closer):
        result = closer()
        if inspect.isawaitable(result):
            await result


async def _wait(awaitable: Awaitable[object]) -> None:
    await awaitable


def close_adapter_blocking(adapter: object) -> None:
    """``close_adapter`` from synchronous code, returning when the adapter is closed.

    A synchronous ``close()`` is simply called. An awaitable close runs on a fresh event loop:
    in this thread when none is running here, else (a synchronous call made from async code,
    whose loop cannot be re-entered) in a helper thread. Exceptions from the adapter
    propagate.
    """
    closer = _closer(adapter)
    if not callable(closer):
        return
    result = closer()
    if not inspect.isawaitable(result):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_wait(result))
        return
    failure: list[BaseException] = []

    def close_elsewhere() -> None:
        try:
            asyncio.run(_wait(result))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    helper = threading.Thread(target=close_elsewhere, name="portfolio-core-close")
    helper.start()
    helper.join()
    if failure:
        raise failure[0]
