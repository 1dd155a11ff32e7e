"""Writing and reading: order, ids, payloads, timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfolio_core.ports.errors import (
    InvalidInputError,
    PortTimeoutError,
)
from portfolio_core.ports.stream import (
    Stream,
    StreamOptions,
)
from portfolio_core.testing._background import in_background
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.stream._common import (
    BOUND,
    SHORT,
    drain,
    items,
)
from portfolio_core.testing.suite import ContractSuite


class ReadWriteClauses(ContractSuite[Stream]):
    """Writing and reading: order, ids, payloads, timeouts."""

    @clause("stream.write.order", "a reader sees exactly the items written, once each, in order")
    async def test_write_then_read(self, adapter: Stream) -> None:
        written = await adapter.write_stream("s", [1, "two", {"three": [3]}, None, 5.5])
        assert written == 5, f"write_stream returned {written}, not the 5 items written"
        more = await adapter.write_stream("s", items(6, 7))
        assert more == 2, "write_stream of an async iterable must count its items"
        got = await drain(adapter, "s")
        assert got == [1, "two", {"three": [3]}, None, 5.5, 6, 7], f"read back {got}"

    @clause("stream.write.order", "a reader sees exactly the items written, once each, in order")
    async def test_ids_unique_and_sources_separate(self, adapter: Stream) -> None:
        await adapter.write_stream("a", range(20))
        await adapter.write_stream("b", ["x"])
        messages = [m async for m in adapter.stream("a", StreamOptions(follow=False))]
        assert [m.payload for m in messages] == list(range(20))
        assert len({m.id for m in messages}) == 20, "message ids must be unique in a source"
        assert all(m.source == "a" for m in messages), "message.source is the name read"
        assert await drain(adapter, "b") == ["x"], "sources must not share messages"

    @clause("stream.read.fanout", "two readers without a group each see every message")
    async def test_fanout(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1, 2, 3])
        first = adapter.stream("s", StreamOptions(follow=False))
        second = adapter.stream("s", StreamOptions(follow=False))
        try:
            a = [await anext(first), await anext(second)]
            a += [await anext(first), await anext(second)]
            a += [await anext(first), await anext(second)]
        finally:
            await first.aclose()  # type: ignore[attr-defined]
            await second.aclose()  # type: ignore[attr-defined]
        assert [m.payload for m in a] == [1, 1, 2, 2, 3, 3]

    @clause("stream.read.empty", "a non-following read of a source never written ends at once")
    async def test_empty_source(self, adapter: Stream) -> None:
        assert await drain(adapter, "nothing-here") == []

    @clause("stream.read.follow", "a following reader receives a message written after it waits")
    async def test_follow(self, adapter: Stream) -> None:
        reader = adapter.stream("s", StreamOptions(timeout=BOUND))
        async with in_background(anext(reader)) as pending:
            await asyncio.sleep(0)
            await adapter.write_stream("s", ["late"])
            message = await asyncio.wait_for(pending, BOUND)
        await reader.aclose()  # type: ignore[attr-defined]
        assert message.payload == "late"

    @clause(
        "stream.read.timeout", "waiting longer than timeout for a message raises PortTimeoutError"
    )
    async def test_read_timeout(self, adapter: Stream) -> None:
        reader = adapter.stream("s", StreamOptions(timeout=SHORT))
        with pytest.raises(PortTimeoutError):
            await asyncio.wait_for(anext(reader), BOUND)
        await reader.aclose()  # type: ignore[attr-defined]

    @clause(
        "stream.read.timeout", "waiting longer than timeout for a message raises PortTimeoutError"
    )
    async def test_read_timeout_after_messages(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1])
        reader = adapter.stream("s", StreamOptions(timeout=SHORT))
        assert (await anext(reader)).payload == 1
        with pytest.raises(PortTimeoutError):
            await asyncio.wait_for(anext(reader), BOUND)
        await reader.aclose()  # type: ignore[attr-defined]

    @clause(
        "stream.payload.invalid",
        "a payload that is not JSON-compatible raises InvalidInputError; items before it are "
        "written, none after",
    )
    @pytest.mark.parametrize(
        "bad",
        [{1, 2}, object(), float("nan"), float("inf"), [float("-inf")], {1: "int key"}],
        # a stable id: pytest-xdist workers must collect the same names
        ids=lambda bad: "object" if type(bad) is object else repr(bad),
    )
    async def test_invalid_payload(self, adapter: Stream, bad: Any) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.write_stream("s", [1, bad, 3])
        assert await drain(adapter, "s") == [1]

    @clause("stream.source.invalid", "an empty source or sink name raises InvalidInputError")
    async def test_invalid_source(self, adapter: Stream) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.write_stream("", [1])
        with pytest.raises(InvalidInputError):
            await drain(adapter, "")

    @clause("stream.write.snapshot", "mutating a payload after writing it changes nothing stored")
    async def test_write_copies(self, adapter: Stream) -> None:
        payload = {"list": [1]}
        await adapter.write_stream("s", [payload])
        payload["list"].append(2)
        assert await drain(adapter, "s") == [{"list": [1]}]
