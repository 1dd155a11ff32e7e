"""What the Stream clauses share: constants, sample inputs and small helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from hypothesis import strategies as st

from portfolio_core.ports.stream import (
    Stream,
    StreamCapability,
    StreamMessage,
    StreamOptions,
)

ACK = StreamCapability.ACKNOWLEDGE
SHORT = 0.05
"""Seconds: the timeout used where a timeout is the behaviour under test."""
BOUND = 10.0
"""Seconds: an upper bound on waits that must end long before it."""


async def drain(adapter: Stream, source: str, opts: StreamOptions | None = None) -> list[Any]:
    """Payloads of a non-following read of ``source``."""
    o = opts or StreamOptions(follow=False)
    return [m.payload async for m in adapter.stream(source, o)]


async def take(iterator: AsyncIterator[StreamMessage], n: int) -> list[StreamMessage]:
    """Up to ``n`` messages from ``iterator``, which is closed afterwards."""
    out: list[StreamMessage] = []
    try:
        while len(out) < n:
            try:
                out.append(await anext(iterator))
            except StopAsyncIteration:
                break
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
    return out


def group_opts(consumer: str, **kw: Any) -> StreamOptions:
    return StreamOptions(group="g", consumer=consumer, follow=False, **kw)


async def ensure_group(adapter: Stream, source: str, group: str = "g") -> None:
    """Create ``group`` on ``source`` by reading it (nothing there yet)."""
    it = adapter.stream(source, StreamOptions(group=group, follow=False))
    assert await take(it, 1) == [], "a new source must be empty"


async def ensure_group_read(adapter: Stream, source: str, consumer: str) -> None:
    """Read ``source`` to its end in group ``g`` as ``consumer`` (creating the group)."""
    await take(adapter.stream(source, group_opts(consumer)), 10**6)


class Flaky:
    """A transform function failing ``failures`` times per item, counting calls."""

    def __init__(self, failures: int, fail_on: Callable[[int], bool] = lambda _x: True) -> None:
        self.failures = failures
        self.fail_on = fail_on
        self.calls: dict[int, int] = {}

    def __call__(self, x: int) -> int:
        self.calls[x] = self.calls.get(x, 0) + 1
        if self.fail_on(x) and self.calls[x] <= self.failures:
            raise ValueError(f"fail {x}")
        return x * 10


async def collect(
    adapter: Stream,
    source: AsyncIterator[Any],
    fn: Callable[[Any], Any],
    opts: StreamOptions | None = None,
    into: list[Any] | None = None,
) -> list[Any]:
    """Run ``adapter.transform`` to the end, appending each output to ``into``."""
    out = [] if into is None else into
    async for x in adapter.transform(source, fn, opts):
        out.append(x)
    return out


async def items(*values: int, hang: bool = False) -> AsyncIterator[int]:
    for v in values:
        yield v
    if hang:
        await asyncio.Event().wait()


SOURCES = st.sampled_from(["s1", "s2"])
