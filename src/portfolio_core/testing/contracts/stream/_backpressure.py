"""Backpressure: what a reader holds and releases."""

from __future__ import annotations

import asyncio

import pytest

from portfolio_core.ports.errors import (
    PortTimeoutError,
)
from portfolio_core.ports.stream import (
    Stream,
    StreamOptions,
)
from portfolio_core.testing._background import in_background
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.contracts.stream._common import (
    ACK,
    BOUND,
    SHORT,
    drain,
    ensure_group,
    group_opts,
    take,
)
from portfolio_core.testing.suite import ContractSuite


class BackpressureClauses(ContractSuite[Stream]):
    """Backpressure: what a reader holds and releases."""

    @clause(
        "stream.backpressure.waits",
        "a writer whose sink holds buffer_size unconsumed messages waits, then times out; "
        "nothing is dropped",
    )
    @requires(ACK)
    async def test_backpressure_times_out(self, adapter: Stream) -> None:
        await ensure_group(adapter, "s")
        with pytest.raises(PortTimeoutError):
            await adapter.write_stream("s", [1, 2, 3], StreamOptions(buffer_size=2, timeout=SHORT))
        assert await drain(adapter, "s") == [1, 2], "the writer wrote past its buffer"
        got = await take(adapter.stream("s", group_opts("c1")), 5)
        assert [m.payload for m in got] == [1, 2]
        for m in got:
            await adapter.ack("s", m, group_opts("c1"))
        assert (
            await adapter.write_stream("s", [3], StreamOptions(buffer_size=2, timeout=BOUND)) == 1
        )
        got = await take(adapter.stream("s", group_opts("c1")), 5)
        assert [m.payload for m in got] == [3], "after the consumer caught up, 3 is next"

    @clause(
        "stream.backpressure.resumes",
        "a waiting writer resumes as its consumer acknowledges, and every item arrives once",
    )
    @requires(ACK)
    async def test_backpressure_resumes(self, adapter: Stream) -> None:
        await ensure_group(adapter, "s")
        got: list[int] = []
        async with in_background(
            adapter.write_stream("s", range(6), StreamOptions(buffer_size=2, timeout=BOUND))
        ) as writer:
            reader = adapter.stream("s", StreamOptions(group="g", consumer="c", timeout=BOUND))
            try:
                while len(got) < 6:
                    message = await anext(reader)
                    got.append(message.payload)
                    await adapter.ack("s", message, StreamOptions(group="g"))
            finally:
                await reader.aclose()  # type: ignore[attr-defined]
            assert await asyncio.wait_for(writer, BOUND) == 6
        assert got == list(range(6))

    @clause(
        "stream.backpressure.plain_reader",
        "a writer blocked on a full sink and a plain reader reading it never deadlock: the "
        "reader releases what it has read, and gets every item once, in order",
    )
    async def test_backpressure_plain_reader(self, adapter: Stream) -> None:
        reader = adapter.stream("s", StreamOptions(timeout=BOUND, buffer_size=1))
        got: list[int] = []
        try:
            async with in_background(
                adapter.write_stream("s", range(8), StreamOptions(buffer_size=2, timeout=BOUND))
            ) as writer:
                while len(got) < 8:
                    got.append((await anext(reader)).payload)
                assert await asyncio.wait_for(writer, BOUND) == 8
        finally:
            await reader.aclose()  # type: ignore[attr-defined]
        assert got == list(range(8)), f"the plain reader got {got}"

    @clause(
        "stream.ids.opaque",
        "message ids are non-empty strings, unique within a source; two sources may reuse them",
    )
    async def test_ids_are_non_empty_strings(self, adapter: Stream) -> None:
        await adapter.write_stream("a", range(12))
        for name in ("p:q", "p/q", "pq"):
            await adapter.write_stream(name, [name, name])
        messages = [m async for m in adapter.stream("a", StreamOptions(follow=False))]
        ids = [m.id for m in messages]
        assert all(isinstance(i, str) and i for i in ids), f"ids {ids!r}"
        assert len(set(ids)) == 12, f"ids repeat within a source: {ids!r}"
        assert [m.payload for m in messages] == list(range(12))
        for name in ("p:q", "p/q", "pq"):
            got = await drain(adapter, name)
            assert got == [name, name], f"source {name!r} holds {got!r}: names collided"
