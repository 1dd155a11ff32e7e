"""ConfigStore clauses: returned collections, the wall clock, and backend faults."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from portfolio_core.ports.config_store import (
    ChangeSet,
    ConfigStore,
)
from portfolio_core.testing._unavailable import expect_all_unavailable
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.clock import FakeWallClock
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.suite import ContractSuite


class FaultClauses(ContractSuite[ConfigStore]):
    """Returned collections, the wall clock, and backend faults."""

    @clause(
        "config_store.snapshots",
        "every returned collection (a snapshot's values, the history list, a change set's "
        "updates) is the caller's own: changing it changes nothing in the store",
    )
    async def test_returned_collections_are_copies(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": {"items": [1]}, "b": 2}, author="ana")
        snap = await adapter.read()
        with contextlib.suppress(TypeError):  # a read-only mapping is a copy too
            snap.values["c"] = 3  # type: ignore[index]
        with contextlib.suppress(TypeError):
            del snap.values["b"]  # type: ignore[attr-defined]
        assert dict(await adapter.read()) == {"a": {"items": [1]}, "b": 2}, (
            "changing a snapshot's values changed what the store reads"
        )
        history = await adapter.history()
        history[0].updates()["a"]["items"].append(2)
        for change in history[0].changes:
            if isinstance(change.value, dict):
                change.value["items"].append(3)
        history.clear()
        again = await adapter.history()
        assert [s.updates() for s in again] == [{"a": {"items": [1]}, "b": 2}], (
            "changing a returned change set or the history list changed the stored history"
        )
        assert await adapter.get("a") == {"items": [1]}

    @clause(
        "config_store.history.wall_clock",
        "a version's time is the store's wall clock when it was made; when that clock steps "
        "back, it holds at the previous version's time instead of decreasing",
    )
    async def test_time_follows_the_wall_clock(
        self, adapter: ConfigStore, wall_clock: FakeWallClock
    ) -> None:
        def at(change_set: ChangeSet) -> float:
            return change_set.at.timestamp()

        await adapter.apply({"a": 1})
        (first,) = await adapter.history()
        assert abs(at(first) - wall_clock.now) < 0.001, (
            f"version 1 is stamped {first.at}, not the store's clock "
            f"({datetime.fromtimestamp(wall_clock.now, UTC)})"
        )
        wall_clock.advance(-30)
        await adapter.apply({"a": 2})
        second = (await adapter.history(from_version=2))[0]
        assert 0 <= at(second) - at(first) < 0.001, (
            "with the clock stepped back, a version's time should hold at the previous one's, "
            f"got {second.at} after {first.at}"
        )
        wall_clock.advance(90)
        await adapter.rollback(1)
        third = (await adapter.history(from_version=3))[0]
        assert abs(at(third) - wall_clock.now) < 0.001, "a version's time did not follow the clock"

    @clause(
        "config_store.faults.unavailable",
        "with the backend unreachable every operation raises UnavailableError and writes "
        "nothing; the store serves again once the backend is back",
    )
    async def test_backend_unreachable(self, adapter: ConfigStore, faults: FaultInjector) -> None:
        await adapter.apply({"a": 1, "b": [1]})
        calls: list[tuple[str, Any]] = [
            ("current_version", adapter.current_version),
            ("get", lambda: adapter.get("a")),
            ("get at a version", lambda: adapter.get("a", version=1)),
            ("read", adapter.read),
            ("history", adapter.history),
            ("apply", lambda: adapter.apply({"a": 2})),
            ("rollback", lambda: adapter.rollback(1)),
            ("watch", lambda: anext(aiter(adapter.watch(from_version=0)))),
        ]
        faults.arm()
        await expect_all_unavailable(calls)
        faults.clear()
        assert faults.calls, "the adapter accepts faults= but never reports reaching its backend"
        assert await adapter.current_version() == 1, "a call that failed unreachable wrote"
        assert dict(await adapter.read()) == {"a": 1, "b": [1]}
        assert await adapter.apply({"a": 2}, expected_version=1) == 2, (
            "the store did not serve again once the backend was back"
        )
