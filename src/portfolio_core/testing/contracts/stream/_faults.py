"""Backend faults become the port's documented errors, and write nothing."""

from __future__ import annotations

from typing import Any

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.stream import Stream, StreamCapability
from portfolio_core.testing._unavailable import expect_all_unavailable
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.stream._common import ACK, drain, group_opts, take
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.suite import ContractSuite


class FaultClauses(ContractSuite[Stream]):
    """Backend faults become the port's documented errors, and write nothing."""

    @clause(
        "stream.faults.unavailable",
        "with the backend unreachable, writing, reading, acknowledging and inspecting raise "
        "UnavailableError and write nothing; the stream serves again once it is back",
    )
    async def test_backend_unreachable(self, adapter: Stream, faults: FaultInjector) -> None:
        await adapter.write_stream("s", [1, 2])
        grouped = supports(adapter, ACK)
        held = []
        if grouped:
            held = await take(adapter.stream("s", group_opts("c1")), 1)
            assert [m.payload for m in held] == [1], "the group did not deliver the first message"
        calls: list[tuple[str, Any]] = [
            ("write_stream", lambda: adapter.write_stream("s", [3])),
            ("a plain read", lambda: drain(adapter, "s")),
        ]
        if grouped:
            calls += [
                ("a group read", lambda: take(adapter.stream("s", group_opts("c2")), 1)),
                ("ack", lambda: adapter.ack("s", held[0], group_opts("c1"))),
            ]
        if supports(adapter, StreamCapability.INSPECT):
            inspectable: Any = adapter  # sources() and count() come with the capability
            calls += [("sources", inspectable.sources), ("count", lambda: inspectable.count("s"))]
        faults.arm()
        await expect_all_unavailable(calls)
        faults.clear()
        assert faults.calls, "the adapter accepts faults= but never reports reaching its backend"
        assert await drain(adapter, "s") == [1, 2], "a write that failed unreachable wrote"
        assert await adapter.write_stream("s", [3]) == 1, "the stream did not serve again"
        assert await drain(adapter, "s") == [1, 2, 3]
        if grouped:
            await adapter.ack("s", held[0], group_opts("c1"))
            rest = await take(adapter.stream("s", group_opts("c2")), 10)
            assert [m.payload for m in rest] == [2, 3], (
                "the group lost or repeated messages across the outage"
            )
