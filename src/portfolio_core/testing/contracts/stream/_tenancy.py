"""Tenant scoping: fail-closed without a tenant, isolation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.stateful import rule

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import (
    TenantRequiredError,
)
from portfolio_core.ports.stream import (
    Stream,
    StreamCapability,
    StreamMessage,
    StreamOptions,
)
from portfolio_core.ports.tenant import tenant_scope
from portfolio_core.testing.adversarial import ADVERSARIAL_IDS, adversarial_ids
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.contracts.stream._common import (
    ACK,
    SOURCES,
    drain,
    ensure_group_read,
    group_opts,
    take,
)
from portfolio_core.testing.loop import LoopRunner, accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.machines import AdapterMachine, property_settings, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

TENANTS = st.sampled_from(["alice", "bob"])


TENANT_ISOLATION_SEQUENCES: list[list[tuple[str, dict[str, Any]]]] = [
    # a tenant acks, in its own source, ids equal to its own pending ids: that acknowledges
    # its own messages (ids are per source), which the other tenant's check must not blame
    # on the other tenant's acks
    [
        ("write", {"tenant": "bob", "source": "s2", "n": 1}),
        ("write", {"tenant": "alice", "source": "s1", "n": 1}),
        ("read", {"tenant": "alice", "source": "s1", "grouped": False}),
        ("read", {"tenant": "bob", "source": "s2", "grouped": True}),
        ("ack_foreign", {"tenant": "bob", "source": "s2"}),
        ("ack_foreign", {"tenant": "alice", "source": "s2"}),
    ],
    # alice writes, bob writes, bob reads in group g, alice acks bob's ids (colliding with
    # hers), alice's group holding her own message with the same id
    [
        ("write", {"tenant": "alice", "source": "s1", "n": 1}),
        ("write", {"tenant": "bob", "source": "s1", "n": 1}),
        ("read", {"tenant": "alice", "source": "s1", "grouped": True}),
        ("read", {"tenant": "bob", "source": "s1", "grouped": True}),
        ("ack_foreign", {"tenant": "alice", "source": "s1"}),
        ("ack_foreign", {"tenant": "bob", "source": "s1"}),
    ],
]


class TenantIsolationMachine(AdapterMachine[Stream]):
    """Two tenants use the same source names; every payload is tagged with its writer.

    Whatever they do, a tenant only ever reads its own tags, lists only sources it used, counts
    at most what it wrote, and its acks with the other tenant's ids never take the other
    tenant's messages away. Such an ack does acknowledge the caller's *own* pending message
    with the same id in the same source (ids are only unique within a source), so the model
    drops those ids from the caller's pending set.
    """

    def __init__(self, factory: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.groups = supports(self.adapter, ACK)
        self.inspect = supports(self.adapter, StreamCapability.INSPECT)
        self.written: dict[tuple[str, str], int] = {}
        self.used: dict[str, set[str]] = {"alice": set(), "bob": set()}
        self.seen_ids: dict[str, list[StreamMessage]] = {"alice": [], "bob": []}
        self.grouped: dict[tuple[str, str], set[str]] = {}
        """(tenant, source) -> ids its group reads delivered (never acknowledged by it)"""

    def _as(self, tenant: str, coro_fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            with tenant_scope(tenant):
                return await coro_fn()

        return self.run(call())

    @rule(tenant=TENANTS, source=SOURCES, n=st.integers(1, 3))
    def write(self, tenant: str, source: str, n: int) -> None:
        start = self.written.get((tenant, source), 0)
        payloads = [{"tenant": tenant, "n": start + i} for i in range(n)]
        self._as(tenant, lambda: self.adapter.write_stream(source, payloads))
        self.written[(tenant, source)] = start + n
        self.used[tenant].add(source)

    @rule(tenant=TENANTS, source=SOURCES, grouped=st.booleans())
    def read(self, tenant: str, source: str, grouped: bool) -> None:
        opts = StreamOptions(follow=False)
        if grouped and self.groups:
            opts = StreamOptions(group="g", consumer=tenant, follow=False)
        messages = self._as(tenant, lambda: take(self.adapter.stream(source, opts), 50))
        self.used[tenant].add(source)
        for m in messages:
            assert m.payload["tenant"] == tenant, f"{tenant} read {m.payload} from {source}"
        self.seen_ids[tenant].extend(messages)
        if opts.group is not None:
            self.grouped.setdefault((tenant, source), set()).update(m.id for m in messages)

    @rule(tenant=TENANTS, source=SOURCES)
    def ack_foreign(self, tenant: str, source: str) -> None:
        if not self.groups:
            return
        other = "bob" if tenant == "alice" else "alice"
        foreign = self.seen_ids[other][-5:]
        for m in foreign:
            ack = functools.partial(self.adapter.ack, source, m, StreamOptions(group="g"))
            self._as(tenant, ack)
        # ids are per source, so they collide across tenants (and sources): an ack names a
        # message of the caller's own ``source``, and these acks legitimately acknowledged
        # any of ``tenant``'s own pending messages there with the same ids
        self.grouped.get((tenant, source), set()).difference_update(m.id for m in foreign)
        # the other tenant's unacknowledged messages are all still there for its group
        self.used[other].add(source)
        mine = self._as(
            other,
            lambda: take(
                self.adapter.stream(source, StreamOptions(group="g", consumer=other, follow=False)),
                10**6,
            ),
        )
        assert all(m.payload["tenant"] == other for m in mine)
        lost = self.grouped.get((other, source), set()) - {m.id for m in mine}
        assert not lost, f"{tenant}'s acks took {other}'s messages {lost} away"

    @rule(tenant=TENANTS)
    def inspect_sources(self, tenant: str) -> None:
        if not self.inspect:
            return
        adapter: Any = self.adapter
        names: set[str] = set(self._as(tenant, adapter.sources))
        assert names <= self.used[tenant], f"{tenant} lists {names}, used {self.used[tenant]}"
        for source in ("s1", "s2"):
            counted: int = self._as(tenant, functools.partial(adapter.count, source))
            written = self.written.get((tenant, source), 0)
            assert counted <= written, f"{tenant} counts {counted} in {source}, wrote {written}"

    @rule(source=SOURCES)
    def no_tenant(self, source: str) -> None:
        async def call() -> None:
            try:
                await self.adapter.write_stream(source, [{"tenant": None}])
            except TenantRequiredError:
                return
            raise AssertionError("a scoped adapter accepted a write with no tenant set")

        self.run(call())


class TenancyClauses(ContractSuite[Stream]):
    """Tenant scoping: fail-closed without a tenant, isolation."""

    @clause(
        "stream.tenant.fail_closed",
        "a tenant-scoped adapter raises TenantRequiredError when no tenant is set",
    )
    @requires(StreamCapability.TENANT_SCOPED)
    async def test_tenant_fail_closed(self, make_adapter: Factory) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        scoped: Stream = await open_adapter(functools.partial(make_adapter, tenant_scoped=True))
        try:
            with pytest.raises(TenantRequiredError):
                await scoped.write_stream("s", [1])
            with pytest.raises(TenantRequiredError):
                await drain(scoped, "s")
            with tenant_scope("a"):
                await scoped.write_stream("s", [1])
                assert await drain(scoped, "s") == [1]
            with tenant_scope("b"):
                assert await drain(scoped, "s") == []
        finally:
            await close_adapter(scoped)

    @clause(
        "stream.tenant.isolation",
        "no sequence of operations lets one tenant read, list, count or ack another's messages",
    )
    @requires(StreamCapability.TENANT_SCOPED)
    def test_tenant_isolation(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        # a partial keeps offering the factory's other parameters (clock=) to the kit
        factory = functools.partial(make_adapter, tenant_scoped=True)
        run_machine(TenantIsolationMachine, factory, kit_settings)

    @clause(
        "stream.tenant.adversarial_ids",
        "two different tenant ids, however alike (case only, separators, '..', astral "
        "characters, escapes written literally), never see each other's messages",
    )
    @requires(StreamCapability.TENANT_SCOPED)
    def test_tenant_ids_never_collide(
        self, make_adapter: Factory, kit_settings: KitSettings
    ) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        runner = LoopRunner(timeout=kit_settings.timeout)
        try:
            scoped: Stream = runner.run(
                open_adapter(functools.partial(make_adapter, tenant_scoped=True))
            )

            @property_settings(kit_settings)
            @given(first=adversarial_ids(), second=adversarial_ids())
            def check(first: str, second: str) -> None:
                assume(first != second)

                async def body() -> None:
                    with tenant_scope(first):
                        await scoped.write_stream("s", [{"tenant": first}])
                    with tenant_scope(second):
                        await scoped.write_stream("s", [{"tenant": second}])
                    with tenant_scope(first):
                        seen = {m["tenant"] for m in await drain(scoped, "s")}
                    assert seen == {first}, f"tenant {first!r} read messages of {seen!r}"

                runner.run(body())

            async def every_fixed_id() -> None:
                for tenant in ADVERSARIAL_IDS:
                    with tenant_scope(tenant):
                        await scoped.write_stream("fixed", [{"tenant": tenant}])
                for tenant in ADVERSARIAL_IDS:
                    with tenant_scope(tenant):
                        seen = [m["tenant"] for m in await drain(scoped, "fixed")]
                    assert seen == [tenant], f"tenant {tenant!r} read messages of {seen!r}"

            try:
                runner.run(every_fixed_id())
                check()
            finally:
                runner.run(close_adapter(scoped))
        finally:
            runner.close()

    @clause(
        "stream.tenant.ack_isolated",
        "acknowledging, for one tenant, the ids of another tenant's messages (ids may collide "
        "across tenants) leaves the other tenant's messages pending for its group",
    )
    @requires(ACK, StreamCapability.TENANT_SCOPED)
    async def test_tenant_ack_isolated(self, make_adapter: Factory) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        scoped: Stream = await open_adapter(functools.partial(make_adapter, tenant_scoped=True))
        g = StreamOptions(group="g")
        try:
            with tenant_scope("alice"):
                await scoped.write_stream("s", [{"t": "alice"}])
            with tenant_scope("bob"):
                await scoped.write_stream("s", [{"t": "bob"}, {"t": "bob"}])
                bobs = await take(scoped.stream("s", group_opts("bob")), 10)
            assert [m.payload for m in bobs] == [{"t": "bob"}] * 2
            with tenant_scope("alice"):
                for m in bobs:  # alice has no group yet: nothing of hers to acknowledge
                    await scoped.ack("s", m, g)
                    await scoped.ack("other", m, g)
                await ensure_group_read(scoped, "s", "alice")
                for m in bobs:  # alice's group now exists and may hold a colliding id
                    await scoped.ack("s", m, g)
            with tenant_scope("bob"):
                again = await take(scoped.stream("s", group_opts("bob")), 10)
            assert [m.id for m in again] == [m.id for m in bobs], (
                f"alice's acks took bob's pending messages away: bob now gets {again}"
            )
            assert all(m.payload == {"t": "bob"} for m in again)
        finally:
            await close_adapter(scoped)

    @clause(
        "stream.tenant.isolation",
        "no sequence of operations lets one tenant read, list, count or ack another's messages",
    )
    @requires(StreamCapability.TENANT_SCOPED)
    def test_tenant_isolation_known_sequences(
        self, make_adapter: Factory, kit_settings: KitSettings
    ) -> None:
        """Replay, every run, sequences the isolation machine once needed luck to find."""
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        factory = functools.partial(make_adapter, tenant_scoped=True)
        for steps in TENANT_ISOLATION_SEQUENCES:
            machine = TenantIsolationMachine(factory, timeout=kit_settings.timeout)
            try:
                for rule_name, kwargs in steps:
                    getattr(machine, rule_name)(**kwargs)
            finally:
                machine.teardown()
