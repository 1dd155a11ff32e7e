"""MemoryStream: the Stream contract suite, plus backpressure and group semantics of its own."""

from __future__ import annotations

import asyncio

import pytest

from portfolio_core.adapters.memory.stream import MemoryStream, MemoryStreamConfig
from portfolio_core.ports import InvalidInputError, PortTimeoutError, StreamMessage, StreamOptions
from portfolio_core.testing.contracts.stream import StreamContract, take


class TestMemoryStreamContract(StreamContract):
    @pytest.fixture
    def make_adapter(self) -> type[MemoryStream]:
        return MemoryStream


async def settle() -> None:
    """Let every runnable task run until all are blocked (memory involves no I/O)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_producer_blocked_while_buffer_full_then_resumes() -> None:
    adapter = MemoryStream()
    reader = adapter.stream("s", StreamOptions(timeout=5))
    first = await asyncio.wait_for(asyncio.gather(anext(reader), adapter.write_stream("s", [0])), 5)
    assert first[0].payload == 0
    writer = asyncio.ensure_future(
        adapter.write_stream("s", range(1, 6), StreamOptions(buffer_size=2))
    )
    await settle()
    assert not writer.done(), "the writer must wait while 2 unread messages are buffered"
    assert await adapter.count("s") == 2, "exactly buffer_size messages are held, none dropped"
    got = [(await anext(reader)).payload]
    await settle()
    assert await adapter.count("s") == 2, "reading one frees one slot, which the writer fills"
    assert not writer.done()
    while len(got) < 5:
        got.append((await anext(reader)).payload)
    assert await asyncio.wait_for(writer, 5) == 5
    assert got == [1, 2, 3, 4, 5]
    await reader.aclose()  # type: ignore[attr-defined]


async def test_unconsumed_source_holds_writer_back() -> None:
    adapter = MemoryStream()
    with pytest.raises(PortTimeoutError, match="2 item"):
        await adapter.write_stream("s", [1, 2, 3], StreamOptions(buffer_size=2, timeout=0.01))
    assert await adapter.count("s") == 2


async def test_slowest_group_holds_messages() -> None:
    adapter = MemoryStream()
    fast, slow = (
        StreamOptions(group="fast", follow=False),
        StreamOptions(group="slow", follow=False),
    )
    for opts in (fast, slow):
        assert await take(adapter.stream("s", opts), 1) == []
    await adapter.write_stream("s", [1, 2])
    for m in await take(adapter.stream("s", fast), 5):
        await adapter.ack("s", m, fast)
    assert await adapter.count("s") == 2, "the slow group has not acknowledged yet"
    for m in await take(adapter.stream("s", slow), 5):
        await adapter.ack("s", m, slow)
    assert await adapter.count("s") == 0, "acknowledged by every group: released"


async def test_redelivery_counts_deliveries() -> None:
    adapter = MemoryStream()
    await adapter.write_stream("s", ["x"])
    opts = StreamOptions(group="g", follow=False)
    first = await take(adapter.stream("s", opts), 1)
    second = await take(adapter.stream("s", opts), 1)
    assert first[0].id == second[0].id
    assert (first[0].headers["deliveries"], second[0].headers["deliveries"]) == ("1", "2")


async def test_read_copies_payloads() -> None:
    adapter = MemoryStream()
    await adapter.write_stream("s", [{"a": [1]}])
    reader_a = adapter.stream("s", StreamOptions(follow=False))
    reader_b = adapter.stream("s", StreamOptions(follow=False))
    a = await anext(reader_a)
    a.payload["a"].append(2)
    assert (await anext(reader_b)).payload == {"a": [1]}
    await reader_a.aclose()  # type: ignore[attr-defined]
    await reader_b.aclose()  # type: ignore[attr-defined]


async def test_ack_rejects_foreign_ids() -> None:
    adapter = MemoryStream()
    with pytest.raises(InvalidInputError):
        await adapter.ack("s", StreamMessage("1-0", 1), StreamOptions(group="g"))


def test_config_and_options() -> None:
    adapter = MemoryStream.from_config(MemoryStreamConfig(tenant_scoped=True))
    assert adapter.tenant_scoped
    assert "tenant_scoped=True" in repr(adapter)
    with pytest.raises(ValueError, match="extra"):
        MemoryStreamConfig.model_validate({"nope": 1})
    assert StreamOptions(on_error="skip").on_error == "skip"  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        StreamOptions(on_error="explode")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        StreamOptions(buffer_size=0)
