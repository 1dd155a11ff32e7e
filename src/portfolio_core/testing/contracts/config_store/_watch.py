"""ConfigStore clauses: watching: order, live delivery, resume, close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from portfolio_core.ports.config_store import (
    DELETE,
    ConfigStore,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.config_store._common import (
    WAIT,
    next_change_set,
    nothing_pending,
)
from portfolio_core.testing.loop import close_adapter
from portfolio_core.testing.suite import ContractSuite


class WatchClauses(ContractSuite[ConfigStore]):
    """Watching: order, live delivery, resume, close."""

    #: seconds a watcher may take to deliver a change set (the suite's watch_timeout)
    watch_timeout: float = WAIT

    @clause(
        "config_store.watch.order",
        "a watcher gets every change set after its version touching its prefix, in version "
        "order, holding only the keys under the prefix",
    )
    async def test_watch(self, adapter: ConfigStore) -> None:
        await adapter.apply({"app.a": 1})
        await adapter.apply({"db.a": 1})
        watcher = adapter.watch("app.", from_version=0)
        everything = adapter.watch(from_version=1)
        try:
            first = await next_change_set(watcher, self.watch_timeout)
            assert (first.version, first.updates()) == (1, {"app.a": 1})
            await adapter.apply({"app.b": 2, "db.b": 2}, author="me")
            await adapter.apply({"db.c": 3})
            await adapter.apply({"app.a": DELETE})
            got = [
                await next_change_set(watcher, self.watch_timeout),
                await next_change_set(watcher, self.watch_timeout),
            ]
            assert [(c.version, c.updates()) for c in got] == [
                (3, {"app.b": 2}),
                (5, {"app.a": DELETE}),
            ]
            assert got[0].author == "me"
            await nothing_pending(watcher)
            all_sets = [await next_change_set(everything, self.watch_timeout) for _ in range(4)]
            assert [c.version for c in all_sets] == [2, 3, 4, 5]
            assert all_sets[1].updates() == {"app.b": 2, "db.b": 2}
        finally:
            await watcher.aclose()  # type: ignore[attr-defined]
            await everything.aclose()  # type: ignore[attr-defined]

    @clause(
        "config_store.watch.live",
        "a watcher started without a version gets the changes made after it started",
    )
    async def test_watch_live(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": 1})
        watcher = adapter.watch()
        try:
            pending = asyncio.ensure_future(next_change_set(watcher, self.watch_timeout))
            await asyncio.sleep(0.05)  # let it start before the change
            await adapter.apply({"a": 2})
            change = await pending
            assert (change.version, change.updates()) == (2, {"a": 2})
        finally:
            await watcher.aclose()  # type: ignore[attr-defined]

    @clause(
        "config_store.watch.resume",
        "a watcher restarted from the last version it saw misses nothing and repeats nothing",
    )
    async def test_watch_resume(self, adapter: ConfigStore) -> None:
        watcher = adapter.watch(from_version=0)
        await adapter.apply({"a": 1})
        seen = [(await next_change_set(watcher, self.watch_timeout)).version]
        await watcher.aclose()  # type: ignore[attr-defined]
        for n in range(2, 5):
            await adapter.apply({"a": n})
        watcher = adapter.watch(from_version=seen[-1])
        try:
            seen.extend(
                [(await next_change_set(watcher, self.watch_timeout)).version for _ in range(3)]
            )
            await adapter.rollback(1)
            rolled = await next_change_set(watcher, self.watch_timeout)
            assert rolled.rollback_of == 1
            assert rolled.updates() == {"a": 1}
        finally:
            await watcher.aclose()  # type: ignore[attr-defined]
        assert seen == [1, 2, 3, 4]

    @clause("config_store.watch.close", "closing the store ends its watchers' iteration")
    async def test_watch_ends_on_close(
        self, new_adapter: Callable[[], Awaitable[ConfigStore]]
    ) -> None:
        store = await new_adapter()
        await store.apply({"a": 1})
        watcher = store.watch(from_version=1)
        pending = asyncio.ensure_future(anext(watcher))
        await asyncio.sleep(0.05)
        await close_adapter(store)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, self.watch_timeout)
