"""Backend faults become the port's documented errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from portfolio_core.ports.cache import Cache, CacheCapability
from portfolio_core.ports.capabilities import supports
from portfolio_core.testing._unavailable import expect_all_unavailable
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.suite import ContractSuite


class FaultClauses(ContractSuite[Cache]):
    """Backend faults become the port's documented errors."""

    @clause(
        "cache.faults.unavailable",
        "an unreachable backend raises UnavailableError on every operation, writes nothing, "
        "and the adapter serves again once the backend is back",
    )
    async def test_backend_unreachable(self, adapter: Any, faults: FaultInjector) -> None:
        await adapter.put_many({"k": 1, "gone": 2})
        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("get", lambda: adapter.get("k")),
            ("put", lambda: adapter.put("k", 99)),
            ("delete", lambda: adapter.delete("gone")),
            ("exists", lambda: adapter.exists("k")),
            ("get_many", lambda: adapter.get_many(["k"])),
            ("put_many", lambda: adapter.put_many({"k": 99, "new": 3})),
            ("clear", adapter.clear),
        ]
        if supports(adapter, CacheCapability.ENUMERATE):
            calls.append(("keys", adapter.keys))
        faults.arm()
        await expect_all_unavailable(calls)
        faults.clear()
        assert faults.calls, "the adapter accepts faults= but never reports reaching its backend"
        assert await adapter.get_many(["k", "gone", "new"]) == {"k": 1, "gone": 2}, (
            "a call that failed with the backend unreachable changed what is stored"
        )
        await adapter.put("k", 5)
        assert await adapter.get("k") == 5, "the adapter did not recover once the backend was back"
