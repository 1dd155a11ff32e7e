"""A handle forwards to its adapter and counts each call in flight until it ends: a coroutine
until it returns, an async generator until it is exhausted or closed; a retarget hands back
the old adapter's generation to drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from portfolio_core.registry._handles import Handle, handle_target


class Adapter:
    label = "first"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def get(self) -> str:
        await self.release.wait()
        return self.label

    async def items(self) -> AsyncIterator[int]:
        yield 1
        await self.release.wait()
        yield 2

    def size(self) -> int:
        return 3


async def test_a_coroutine_is_counted_until_it_returns() -> None:
    adapter = Adapter()
    handle = Handle(adapter)
    call = asyncio.ensure_future(handle.get())
    await asyncio.sleep(0)
    old = handle._pc_retarget(Adapter())
    assert old.active == 1
    assert await old.drained(0.05) is False  # still running
    adapter.release.set()
    assert await call == "first"
    assert await old.drained(1.0) is True


async def test_an_async_generator_is_counted_until_it_is_closed() -> None:
    adapter = Adapter()
    handle = Handle(adapter)
    items = handle.items()
    assert await anext(items) == 1
    assert handle._pc_gen.active == 1
    await items.aclose()
    assert handle._pc_gen.active == 0
    adapter.release.set()
    assert [i async for i in handle.items()] == [1, 2]
    assert handle._pc_gen.active == 0


def test_attributes_and_sync_methods_pass_straight_through() -> None:
    adapter = Adapter()
    handle = Handle(adapter)
    assert handle.label == "first"
    assert handle.size() == 3
    assert handle_target(handle) is adapter
    assert handle_target(adapter) is adapter
    assert repr(handle) == f"<handle of {adapter!r}>"
