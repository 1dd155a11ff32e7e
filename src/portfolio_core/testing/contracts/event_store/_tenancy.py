"""Tenant scoping: fail-closed without a tenant, isolation, separators, subscriptions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import (
    NotFoundError,
    TenantRequiredError,
)
from portfolio_core.ports.event_store import (
    EventQuery,
    EventStore,
    EventStoreCapability,
    NewEvent,
    RecordedEvent,
    StreamState,
)
from portfolio_core.ports.tenant import tenant_scope
from portfolio_core.testing._factories import tenant_scoped_adapter
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.contracts.event_store._common import (
    WAIT,
    ev,
)
from portfolio_core.testing.loop import LoopRunner
from portfolio_core.testing.suite import ContractSuite


class TenancyClauses(ContractSuite[EventStore]):
    """Tenant scoping: fail-closed without a tenant, isolation, separators, subscriptions."""

    scoped_adapter = tenant_scoped_adapter(EventStoreCapability.TENANT_SCOPED)

    @clause(
        "event_store.tenant.fail_closed",
        "a tenant-scoped store refuses every call made with no tenant, and writes nothing",
    )
    def test_tenant_fail_closed(self, scoped_adapter: EventStore, kit_runner: LoopRunner) -> None:
        async def handler(e: RecordedEvent) -> None:
            return None

        calls: list[Any] = [
            lambda: scoped_adapter.append("s", [ev()]),
            lambda: scoped_adapter.read("s"),
            lambda: scoped_adapter.read_all(),
        ]
        if supports(scoped_adapter, EventStoreCapability.QUERY):
            calls.append(lambda: scoped_adapter.query(EventQuery()))
        if supports(scoped_adapter, EventStoreCapability.SUBSCRIBE):
            calls.append(lambda: scoped_adapter.subscribe(handler))
        for call in calls:
            with pytest.raises(TenantRequiredError):
                kit_runner.run(call())

        async def nothing_written() -> None:
            with tenant_scope("anyone"):
                assert await scoped_adapter.read_all() == [], "a refused append wrote events"

        kit_runner.run(nothing_written())

    @clause(
        "event_store.tenant.isolation",
        "each tenant has its own streams, ids and positions: no call for one tenant reads, "
        "queries or subscribes to another's events",
    )
    def test_tenant_isolation(self, scoped_adapter: EventStore, kit_runner: LoopRunner) -> None:
        shared_id = "same-id-in-both-tenants"

        alices = [NewEvent("E", {"who": "alice"}, id=shared_id), ev(i=1)]

        async def body() -> None:
            with tenant_scope("alice"):
                ra = await scoped_adapter.append("s", alices)
            with tenant_scope("bob"):
                rb = await scoped_adapter.append(
                    "s", [NewEvent("E", {"who": "bob"}, id=shared_id)], StreamState.NO_STREAM
                )
                assert rb.version == 1, "bob's stream 's' saw alice's events"
                assert [e.data for e in await scoped_adapter.read("s")] == [{"who": "bob"}]
                every = await scoped_adapter.read_all()
                assert [e.data for e in every] == [{"who": "bob"}], "read_all crossed tenants"
                assert every[0].position == rb.positions[0]
                if supports(scoped_adapter, EventStoreCapability.GAPLESS):
                    assert rb.positions == (1,), "positions are not per tenant"
                if supports(scoped_adapter, EventStoreCapability.QUERY):
                    found = await scoped_adapter.query(EventQuery(streams=frozenset({"s"})))
                    assert [e.data for e in found] == [{"who": "bob"}], "query crossed tenants"
            with tenant_scope("carol"):
                with pytest.raises(NotFoundError):
                    await scoped_adapter.read("s")
                assert await scoped_adapter.read_all() == []
            with tenant_scope("alice"):
                again = await scoped_adapter.append("s", alices, StreamState.ANY)
                assert again.version == ra.version == 2, "bob's event changed alice's stream"

        kit_runner.run(body())

    @clause(
        "event_store.tenant.adversarial",
        "tenant ids and stream names holding the adapter's separators (':', '/') never "
        "collide: tenant 'a' stream 'b:s' is not tenant 'a:b' stream 's'",
    )
    def test_tenant_and_stream_separators(
        self, scoped_adapter: EventStore, kit_runner: LoopRunner
    ) -> None:
        pairs = [("a", "b:s"), ("a:b", "s"), ("a", "b/s"), ("a/b", "s"), ("a:b:s", "x")]

        async def body() -> None:
            for tenant, stream in pairs:
                with tenant_scope(tenant):
                    await scoped_adapter.append(stream, [ev(tenant=tenant, stream=stream)])
            for tenant, stream in pairs:
                with tenant_scope(tenant):
                    got = [
                        (e.data["tenant"], e.data["stream"])
                        for e in await scoped_adapter.read(stream)
                    ]
                    assert got == [(tenant, stream)], f"tenant {tenant!r} stream {stream!r}: {got}"
                    mine = [e.data["tenant"] for e in await scoped_adapter.read_all()]
                    assert set(mine) == {tenant}, f"tenant {tenant!r} read_all saw {mine}"

        kit_runner.run(body())

    @clause(
        "event_store.tenant.subscription",
        "a subscription delivers only the events of the tenant current when it was made",
    )
    @requires(EventStoreCapability.SUBSCRIBE)
    def test_tenant_subscription(self, scoped_adapter: EventStore, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            got: list[str] = []

            async def handler(e: RecordedEvent) -> None:
                got.append(e.data["who"])

            with tenant_scope("alice"):
                await scoped_adapter.append("s", [NewEvent("E", {"who": "alice"})])
            with tenant_scope("bob"):
                await scoped_adapter.append("s", [NewEvent("E", {"who": "bob"})])
                sub = await scoped_adapter.subscribe(handler)
            try:
                with tenant_scope("alice"):
                    await scoped_adapter.append("s", [NewEvent("E", {"who": "alice"})] * 1)
                with tenant_scope("bob"):
                    last = await scoped_adapter.append("s", [NewEvent("E", {"who": "bob"})])
                await sub.wait_until(last.positions[-1], WAIT)
                await asyncio.sleep(0.05)
                assert got == ["bob", "bob"], f"bob's subscription delivered {got}"
            finally:
                await scoped_adapter.unsubscribe(sub)

        kit_runner.run(body())
