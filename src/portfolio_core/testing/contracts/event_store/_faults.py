"""Backend faults become the port's documented errors."""

from __future__ import annotations

from typing import Any

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.event_store import (
    EventQuery,
    EventStore,
    EventStoreCapability,
)
from portfolio_core.testing._unavailable import expect_all_unavailable
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.event_store._common import (
    ev,
)
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.suite import ContractSuite


class FaultClauses(ContractSuite[EventStore]):
    """Backend faults become the port's documented errors."""

    @clause(
        "event_store.faults.unavailable",
        "an unreachable backend raises UnavailableError, an append then writes nothing, and "
        "the store serves again once the backend is back",
    )
    async def test_backend_unreachable(self, adapter: EventStore, faults: FaultInjector) -> None:
        first = await adapter.append("s", [ev(i=1)])
        calls: list[tuple[str, Any]] = [
            ("append", lambda: adapter.append("s", [ev(i=2)], 1)),
            ("append to a new stream", lambda: adapter.append("t", [ev(i=3)])),
            ("read", lambda: adapter.read("s")),
            ("read_all", adapter.read_all),
        ]
        if supports(adapter, EventStoreCapability.QUERY):
            calls.append(("query", lambda: adapter.query(EventQuery())))
        faults.arm()
        await expect_all_unavailable(calls)
        faults.clear()
        assert faults.calls, "the adapter accepts faults= but never reports reaching its backend"
        stored = await adapter.read_all()
        assert [e.position for e in stored] == list(first.positions), (
            "an append that failed with the backend unreachable wrote events"
        )
        again = await adapter.append("s", [ev(i=4)], 1)
        assert again.version == 2, "the store did not recover once the backend was back"
