"""Transform and on_error: the policies for a failing transform."""

from __future__ import annotations

import asyncio

import pytest

from portfolio_core.ports.errors import (
    PortTimeoutError,
)
from portfolio_core.ports.stream import (
    OnError,
    Stream,
    StreamOptions,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.stream._common import (
    SHORT,
    Flaky,
    collect,
    items,
)
from portfolio_core.testing.suite import ContractSuite


class TransformClauses(ContractSuite[Stream]):
    """transform and on_error: the policies for a failing transform."""

    @clause("stream.transform.map", "transform applies sync and async fn to each item, in order")
    async def test_transform_map(self, adapter: Stream) -> None:
        assert await collect(adapter, items(1, 2, 3), lambda x: x + 1) == [2, 3, 4]

        async def double(x: int) -> int:
            await asyncio.sleep(0)
            return 2 * x

        assert await collect(adapter, items(1, 2, 3), double) == [2, 4, 6]

    @clause("stream.transform.halt", "on_error=halt raises the first failure of fn")
    async def test_transform_halt(self, adapter: Stream) -> None:
        fn = Flaky(99, lambda x: x == 2)
        seen: list[int] = []
        with pytest.raises(ValueError, match="fail 2"):
            await collect(adapter, items(1, 2, 3), fn, StreamOptions(), seen)
        assert seen == [10], f"halt yielded {seen} before failing"
        assert 3 not in fn.calls, "halt must not go on to the next item"

    @clause("stream.transform.skip", "on_error=skip drops failing items and keeps the rest")
    async def test_transform_skip(self, adapter: Stream) -> None:
        fn = Flaky(99, lambda x: x % 2 == 0)
        opts = StreamOptions(on_error=OnError.SKIP)
        assert await collect(adapter, items(1, 2, 3, 4, 5), fn, opts) == [10, 30, 50]
        assert fn.calls == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}, "skip must not retry"

    @clause("stream.transform.retry", "on_error=retry calls fn again up to max_retries times")
    async def test_transform_retry_recovers(self, adapter: Stream) -> None:
        fn = Flaky(2, lambda x: x == 2)
        opts = StreamOptions(on_error=OnError.RETRY, max_retries=3)
        assert await collect(adapter, items(1, 2, 3), fn, opts) == [10, 20, 30]
        assert fn.calls[2] == 3, f"fn was called {fn.calls[2]} times for the flaky item"

    @clause("stream.transform.retry", "on_error=retry calls fn again up to max_retries times")
    async def test_transform_retry_is_bounded(self, adapter: Stream) -> None:
        fn = Flaky(10**6, lambda x: x == 1)
        opts = StreamOptions(on_error=OnError.RETRY, max_retries=2)
        with pytest.raises(ValueError, match="fail 1"):
            await collect(adapter, items(1, 2), fn, opts)
        assert fn.calls == {1: 3}, f"expected 1 call + 2 retries, got {fn.calls}"

    @clause(
        "stream.transform.timeout",
        "a source or async fn slower than timeout raises PortTimeoutError",
    )
    async def test_transform_timeouts(self, adapter: Stream) -> None:
        out: list[int] = []
        with pytest.raises(PortTimeoutError):
            await collect(
                adapter, items(1, hang=True), lambda x: x, StreamOptions(timeout=SHORT), out
            )
        assert out == [1]

        async def stuck(x: int) -> int:
            await asyncio.Event().wait()
            return x

        with pytest.raises(PortTimeoutError):
            await collect(adapter, items(1), stuck, StreamOptions(timeout=SHORT))
        opts = StreamOptions(timeout=SHORT, on_error=OnError.SKIP)
        assert await collect(adapter, items(1), stuck, opts) == []
