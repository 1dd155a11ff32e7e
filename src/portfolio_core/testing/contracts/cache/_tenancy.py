"""Tenant scoping: fail-closed without a tenant, isolation, separators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from portfolio_core.ports.cache import Cache, CacheCapability
from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import TenantRequiredError
from portfolio_core.ports.tenant import TenantContext, tenant_scope
from portfolio_core.testing._factories import tenant_scoped_adapter, with_options
from portfolio_core.testing.adversarial import ADVERSARIAL_IDS, adversarial_ids
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.contracts.cache._common import (
    keys_st,
    values_st,
)
from portfolio_core.testing.loop import LoopRunner, accepts_keyword
from portfolio_core.testing.machines import AdapterMachine, property_settings, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

tenants_st = st.sampled_from(["alpha", "beta", "alpha:beta"])


class TenantIsolationMachine(AdapterMachine[Cache]):
    """With scoping on, each tenant sees exactly what its own operations left (one dict each)."""

    def __init__(self, factory: Factory, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.models: dict[str, dict[str, Any]] = {}
        self.enumerable = supports(self.adapter, CacheCapability.ENUMERATE)

    def model(self, tenant: str) -> dict[str, Any]:
        return self.models.setdefault(tenant, {})

    def scoped(self, tenant: str, call: Callable[[], Awaitable[Any]]) -> Any:
        async def body() -> Any:
            with tenant_scope(tenant):
                return await call()

        return self.run(body())

    @rule(tenant=tenants_st, key=keys_st, value=values_st)
    def put(self, tenant: str, key: str, value: Any) -> None:
        self.scoped(tenant, lambda: self.adapter.put(key, value))
        self.model(tenant)[key] = value

    @rule(tenant=tenants_st, items=st.dictionaries(keys_st, values_st, max_size=3))
    def put_many(self, tenant: str, items: dict[str, Any]) -> None:
        self.scoped(tenant, lambda: self.adapter.put_many(items))
        self.model(tenant).update(items)

    @rule(tenant=tenants_st, key=keys_st)
    def get(self, tenant: str, key: str) -> None:
        got = self.scoped(tenant, lambda: self.adapter.get(key))
        assert got == self.model(tenant).get(key), f"tenant {tenant!r} read {got!r} at {key!r}"

    @rule(tenant=tenants_st, key=keys_st)
    def exists(self, tenant: str, key: str) -> None:
        got = self.scoped(tenant, lambda: self.adapter.exists(key))
        assert got == (key in self.model(tenant)), f"tenant {tenant!r}: exists({key!r}) {got!r}"

    @rule(tenant=tenants_st)
    def get_many(self, tenant: str) -> None:
        keys = ["a", "b", "c", "d:e"]
        got = self.scoped(tenant, lambda: self.adapter.get_many(keys))
        mine = self.model(tenant)
        assert got == {k: mine[k] for k in keys if k in mine}, f"tenant {tenant!r} saw {got!r}"

    @rule(tenant=tenants_st, key=keys_st)
    def delete(self, tenant: str, key: str) -> None:
        got = self.scoped(tenant, lambda: self.adapter.delete(key))
        assert got == (key in self.model(tenant)), f"tenant {tenant!r}: delete({key!r}) {got!r}"
        self.model(tenant).pop(key, None)

    @rule(tenant=tenants_st)
    def clear(self, tenant: str) -> None:
        self.scoped(tenant, self.adapter.clear)
        self.model(tenant).clear()

    @precondition(lambda self: self.enumerable)
    @rule(tenant=tenants_st)
    def keys_and_count(self, tenant: str) -> None:
        adapter: Any = self.adapter
        listed = sorted(self.scoped(tenant, adapter.keys))
        counted = self.scoped(tenant, adapter.count)
        assert listed == sorted(self.model(tenant)), f"tenant {tenant!r} listed {listed!r}"
        assert counted == len(self.model(tenant)), f"tenant {tenant!r} counted {counted}"


class TenancyClauses(ContractSuite[Cache]):
    """Tenant scoping: fail-closed without a tenant, isolation, separators."""

    scoped_adapter = tenant_scoped_adapter(CacheCapability.TENANT_SCOPED)

    @clause("cache.tenant.fail_closed", "a tenant-scoped cache refuses every call with no tenant")
    def test_tenant_fail_closed(self, scoped_adapter: Any, kit_runner: LoopRunner) -> None:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: scoped_adapter.get("k"),
            lambda: scoped_adapter.put("k", 1),
            lambda: scoped_adapter.delete("k"),
            lambda: scoped_adapter.exists("k"),
            lambda: scoped_adapter.clear(),
            lambda: scoped_adapter.get_many(["k"]),
            lambda: scoped_adapter.put_many({"k": 1}),
        ]
        if supports(scoped_adapter, CacheCapability.ENUMERATE):
            calls += [lambda: scoped_adapter.keys(), lambda: scoped_adapter.count()]
        for call in calls:
            with pytest.raises(TenantRequiredError):
                kit_runner.run(call())

    @clause(
        "cache.tenant.clear_isolated",
        "clear() by one tenant removes only that tenant's items, never another tenant's",
    )
    def test_tenant_clear_isolated(self, scoped_adapter: Any, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            with tenant_scope("alice"):
                await scoped_adapter.put("shared-key", "alice's")
            with tenant_scope("bob"):
                await scoped_adapter.put("shared-key", "bob's")
                await scoped_adapter.put("bob-only", 2)
            with tenant_scope("alice"):
                await scoped_adapter.clear()
                assert await scoped_adapter.get("shared-key") is None, "clear left alice's item"
            with tenant_scope("bob"):
                assert await scoped_adapter.get("shared-key") == "bob's", (
                    "alice's clear() removed bob's item"
                )
                assert await scoped_adapter.get("bob-only") == 2, (
                    "alice's clear() removed bob's item"
                )

        kit_runner.run(body())

    @clause(
        "cache.tenant.default_ttl",
        "a scoped cache applies the tenant's cache.default_ttl override when put has no ttl",
    )
    @requires(CacheCapability.TTL)
    def test_tenant_default_ttl(
        self, scoped_adapter: Any, kit_runner: LoopRunner, clock: FakeClock
    ) -> None:
        short = TenantContext("short", {"cache.default_ttl": 5})

        async def body() -> None:
            with tenant_scope(short):
                await scoped_adapter.put("k", 1)
                await scoped_adapter.put_many({"m": 2})
                await scoped_adapter.put("explicit", 3, ttl=50)
            with tenant_scope("plain"):
                await scoped_adapter.put("k", 1)
            clock.advance(6)
            with tenant_scope(short):
                assert await scoped_adapter.get_many(["k", "m", "explicit"]) == {"explicit": 3}, (
                    "the tenant's cache.default_ttl was not applied (or overrode an explicit ttl)"
                )
            with tenant_scope("plain"):
                assert await scoped_adapter.get("k") == 1, "another tenant's override leaked"

        kit_runner.run(body())

    @clause(
        "cache.tenant.isolation", "one tenant cannot read, list, count, delete or clear another's"
    )
    def test_tenant_isolation_examples(self, scoped_adapter: Any, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            with tenant_scope("a"):
                await scoped_adapter.put_many({"k": "a", "only-a": 1})
            with tenant_scope("b"):
                assert await scoped_adapter.get("k") is None, "tenant b read tenant a's item"
                assert not await scoped_adapter.exists("only-a")
                assert await scoped_adapter.get_many(["k", "only-a"]) == {}
                assert await scoped_adapter.delete("k") is False
                await scoped_adapter.put("k", "b")
                await scoped_adapter.clear()
                if supports(scoped_adapter, CacheCapability.ENUMERATE):
                    assert await scoped_adapter.keys() == []
                    assert await scoped_adapter.count() == 0
            with tenant_scope("a"):
                assert await scoped_adapter.get_many(["k", "only-a"]) == {"k": "a", "only-a": 1}, (
                    "another tenant's delete or clear removed tenant a's items"
                )

        kit_runner.run(body())

    @clause(
        "cache.tenant.isolation", "one tenant cannot read, list, count, delete or clear another's"
    )
    @requires(CacheCapability.TENANT_SCOPED)
    def test_tenant_isolation_property(
        self, make_adapter: Factory, kit_settings: KitSettings
    ) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so scoping is not checked")
        run_machine(
            TenantIsolationMachine, with_options(make_adapter, tenant_scoped=True), kit_settings
        )

    @clause(
        "cache.tenant.adversarial_ids",
        "two different tenant ids, however alike (case only, separators, '..', astral "
        "characters, escapes written literally), never see each other's items",
    )
    def test_tenant_ids_never_collide(
        self, scoped_adapter: Any, kit_runner: LoopRunner, kit_settings: KitSettings
    ) -> None:
        enumerable = supports(scoped_adapter, CacheCapability.ENUMERATE)

        @property_settings(kit_settings)
        @given(first=adversarial_ids(), second=adversarial_ids())
        def check(first: str, second: str) -> None:
            assume(first != second)

            async def body() -> None:
                with tenant_scope(first):
                    await scoped_adapter.put("k", {"tenant": first})
                with tenant_scope(second):
                    await scoped_adapter.put("k", {"tenant": second})
                with tenant_scope(first):
                    got = await scoped_adapter.get("k")
                    assert got == {"tenant": first}, f"tenant {first!r} read {got!r}"
                    if enumerable:
                        assert await scoped_adapter.keys() == ["k"]

            kit_runner.run(body())

        async def every_fixed_id() -> None:
            for tenant in ADVERSARIAL_IDS:
                with tenant_scope(tenant):
                    await scoped_adapter.put("k", {"tenant": tenant})
            for tenant in ADVERSARIAL_IDS:
                with tenant_scope(tenant):
                    got = await scoped_adapter.get("k")
                    assert got == {"tenant": tenant}, f"tenant {tenant!r} read {got!r}"

        kit_runner.run(every_fixed_id())
        check()

    @clause(
        "cache.key.adversarial",
        "different keys, however alike (case only, separators, '..', astral characters), "
        "hold different items",
    )
    def test_keys_never_collide(
        self, adapter: Any, kit_runner: LoopRunner, kit_settings: KitSettings
    ) -> None:
        enumerable = supports(adapter, CacheCapability.ENUMERATE)

        @property_settings(kit_settings)
        @given(keys=st.lists(adversarial_ids(), unique=True, min_size=2, max_size=6))
        def check(keys: list[str]) -> None:
            async def body() -> None:
                await adapter.clear()
                for i, key in enumerate(keys):
                    await adapter.put(key, i)
                got = [await adapter.get(key) for key in keys]
                assert got == list(range(len(keys))), f"keys {keys!r} share items: {got!r}"
                if enumerable:
                    assert sorted(await adapter.keys()) == sorted(keys)

            kit_runner.run(body())

        check()
        check.hypothesis.inner_test(list(ADVERSARIAL_IDS))  # type: ignore[attr-defined]
