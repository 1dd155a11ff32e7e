"""Contract suite of the Tenant port, with a quota state machine against a pure model.

Factories: ``make_adapter`` returns a factory of fresh tenant adapters with independent
quota counters. The quota clauses call it with ``quotas=`` (resource -> ``"N/hour"`` limit
strings) and the override clauses with ``tenant_config=`` (tenant -> mapping); each runs only
when the factory accepts that keyword and the adapter declares the matching capability.
Quota windows in these clauses are an hour long, so no window resets during a test.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import (
    InvalidInputError,
    QuotaExceededError,
    TenantRequiredError,
)
from portfolio_core.ports.tenant import (
    Tenant,
    TenantCapability,
    TenantContext,
    current_tenant,
    tenant_scope,
)
from portfolio_core.testing._factories import adapter_with_option, with_options
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.loop import LoopRunner, accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = ["QUOTAS", "QuotaMachine", "TenantContract"]

#: the quotas the kit configures: resource -> allowance per hour
QUOTAS = {"kit.requests": 5, "kit.tokens": 20}


def _quota_strings() -> dict[str, str]:
    return {resource: f"{n}/hour" for resource, n in QUOTAS.items()}


class TenantContract(ContractSuite[Tenant]):
    """The promises of [Tenant][portfolio_core.ports.Tenant] (see docs/ports/tenant.md)."""

    port_key = "tenant"
    capability_names = frozenset(c.value for c in TenantCapability)

    @pytest.fixture
    def quota_adapter(
        self, make_adapter: Factory, kit_runner: LoopRunner, kit_clock: FakeClock
    ) -> Iterator[Any]:
        """A fresh adapter with the kit's quotas (skips when quotas cannot be configured)."""
        yield from adapter_with_option(
            make_adapter,
            kit_runner,
            kit_clock,
            option="quotas",
            value=_quota_strings(),
            capability=TenantCapability.QUOTAS,
            unchecked="quotas are not checked",
        )

    # -- context ---------------------------------------------------------------------------------

    @clause("tenant.context.default_none", "with no tenant set, get_context returns None")
    def test_default_none(self, adapter: Tenant) -> None:
        ctx = contextvars.Context()
        assert ctx.run(adapter.get_context) is None

    @clause(
        "tenant.with_tenant.scope",
        "with_tenant makes the tenant current in the shared variable and restores the previous "
        "one on exit, also on error and when nested",
    )
    def test_with_tenant(self, adapter: Tenant) -> None:
        def body() -> None:
            with adapter.with_tenant("outer") as outer:
                assert isinstance(outer, TenantContext)
                assert current_tenant() is not None
                assert current_tenant().tenant_id == "outer"  # type: ignore[union-attr]
                with adapter.with_tenant(TenantContext("inner")):
                    got = adapter.get_context()
                    assert got is not None
                    assert got.tenant_id == "inner"
                got = adapter.get_context()
                assert got is not None
                assert got.tenant_id == "outer", "nested with_tenant did not restore the outer"
                with pytest.raises(RuntimeError), adapter.with_tenant("boom"):
                    raise RuntimeError("inside")
                got = adapter.get_context()
                assert got is not None
                assert got.tenant_id == "outer", "with_tenant did not restore after an error"
            assert adapter.get_context() is None

        contextvars.Context().run(body)

    @clause("tenant.set_context.token", "reset_context(token) restores what set_context replaced")
    def test_set_and_reset(self, adapter: Tenant) -> None:
        def body() -> None:
            first = adapter.set_context(TenantContext("a"))
            second = adapter.set_context(TenantContext("b"))
            got = current_tenant()
            assert got is not None
            assert got.tenant_id == "b"
            adapter.reset_context(second)
            got = current_tenant()
            assert got is not None
            assert got.tenant_id == "a"
            adapter.reset_context(first)
            assert current_tenant() is None

        contextvars.Context().run(body)

    @clause(
        "tenant.context.async",
        "the tenant follows asyncio.gather, tasks and asyncio.to_thread; siblings do not leak",
    )
    async def test_async_propagation(self, adapter: Tenant) -> None:
        async def worker(name: str) -> tuple[str, str | None, str | None, str | None]:
            with adapter.with_tenant(name):
                await asyncio.sleep(0)
                in_thread = await asyncio.to_thread(adapter.get_context)
                in_task = await asyncio.create_task(_current_later())
                after = adapter.get_context()
                return (
                    name,
                    None if in_thread is None else in_thread.tenant_id,
                    None if in_task is None else in_task.tenant_id,
                    None if after is None else after.tenant_id,
                )

        results = await asyncio.gather(*(worker(f"tenant-{i}") for i in range(8)))
        for name, in_thread, in_task, after in results:
            assert in_thread == name, f"{name}: to_thread saw {in_thread!r}"
            assert in_task == name, f"{name}: a child task saw {in_task!r}"
            assert after == name, f"{name}: a sibling's tenant leaked in ({after!r})"

        async def setter() -> None:
            adapter.set_context(TenantContext("leaky"))

        with adapter.with_tenant("parent"):
            await asyncio.create_task(setter())
            got = adapter.get_context()
            assert got is not None
            assert got.tenant_id == "parent", "a child task's set_context leaked to its parent"

    # -- quotas ----------------------------------------------------------------------------------

    @clause("tenant.quota.fail_closed", "check_quota with no tenant raises TenantRequiredError")
    async def test_quota_fail_closed(self, adapter: Tenant) -> None:
        async def call() -> None:
            await adapter.check_quota("kit.requests")

        ctx = contextvars.Context()
        with pytest.raises(TenantRequiredError):
            await asyncio.get_running_loop().create_task(call(), context=ctx)

    @clause("tenant.quota.consume", "check_quota takes cost units and reports what remains")
    def test_quota_consumes(self, quota_adapter: Any, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            with tenant_scope("t1"):
                status = await quota_adapter.check_quota("kit.requests")
                assert status.remaining == 4, status
                assert status.tenant == "t1"
                assert status.resource == "kit.requests"
                status = await quota_adapter.check_quota("kit.requests", 3)
                assert status.remaining == 1, status

        kit_runner.run(body())

    @clause(
        "tenant.quota.refusal",
        "a refused check raises QuotaExceededError with retry_after and consumes nothing",
    )
    def test_quota_refusal(self, quota_adapter: Any, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            with tenant_scope("t1"):
                await quota_adapter.check_quota("kit.requests", 4)
                with pytest.raises(QuotaExceededError) as info:
                    await quota_adapter.check_quota("kit.requests", 2)
                err = info.value
                assert err.tenant == "t1"
                assert err.resource == "kit.requests"
                assert err.retry_after is not None
                assert 0 < err.retry_after <= 3600, err.retry_after
                status = await quota_adapter.check_quota("kit.requests", 1)
                assert status.remaining == 0, "the refused check consumed part of the quota"
                with pytest.raises(QuotaExceededError):
                    await quota_adapter.check_quota("kit.requests", 1)

        kit_runner.run(body())

    @clause(
        "tenant.quota.over_allowance",
        "a cost larger than the whole allowance can never succeed: QuotaExceededError with "
        "retry_after None, consuming nothing",
    )
    def test_cost_over_the_whole_allowance(
        self, quota_adapter: Any, kit_runner: LoopRunner
    ) -> None:
        async def body() -> None:
            with tenant_scope("t1"):
                with pytest.raises(QuotaExceededError) as info:
                    await quota_adapter.check_quota("kit.requests", 6)
                assert info.value.retry_after is None, (
                    f"a cost of 6 against an allowance of 5 can never succeed, yet retry_after "
                    f"is {info.value.retry_after!r} (it must be None)"
                )
                status = await quota_adapter.check_quota("kit.requests", 5)
                assert status.remaining == 0, "the refused check consumed part of the quota"

        kit_runner.run(body())

    @clause(
        "tenant.quota.window",
        "a spent allowance comes back when its window has passed: retry_after is at most the "
        "window, and a check after waiting it succeeds (real time, a one-second window)",
    )
    def test_quota_window_passes(
        self, make_adapter: Factory, kit_runner: LoopRunner, kit_clock: FakeClock
    ) -> None:
        if not accepts_keyword(make_adapter, "quotas"):
            pytest.skip("the factory does not accept quotas=, so quotas are not checked")
        made = kit_runner.run(
            open_adapter(
                with_options(make_adapter, quotas={"kit.fast": "2/second"}), clock=kit_clock
            )
        )

        async def body() -> None:
            with tenant_scope("t1"):
                await made.check_quota("kit.fast", 2)
                with pytest.raises(QuotaExceededError) as info:
                    await made.check_quota("kit.fast")
                wait = info.value.retry_after
                assert wait is not None, "a refusal must say when a retry can succeed"
                assert 0 < wait <= 1.05, f"retry_after {wait} s for a one-second window"
                await asyncio.sleep(wait + 0.05)
                status = await made.check_quota("kit.fast")
                assert status.remaining == 1, (
                    f"after waiting retry_after, {status.remaining} of 2 remain, not 1"
                )

        try:
            if not supports(made, TenantCapability.QUOTAS):
                pytest.skip(f"{type(made).__name__} does not declare 'tenant.quotas'")
            kit_runner.run(body())
        finally:
            kit_runner.run(close_adapter(made))

    @clause("tenant.quota.per_tenant", "one tenant's use never reduces another tenant's allowance")
    def test_quota_per_tenant(self, quota_adapter: Any, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            with tenant_scope("a"):
                await quota_adapter.check_quota("kit.requests", 5)
            with tenant_scope("a/kit.requests"):
                status = await quota_adapter.check_quota("kit.requests", 5)
                assert status.remaining == 0, "tenants share a quota counter"
            with tenant_scope("a"):
                status = await quota_adapter.check_quota("kit.tokens", 20)
                assert status.remaining == 0, "resources share a quota counter"

        kit_runner.run(body())

    @clause("tenant.quota.concurrent", "concurrent checks never take more than the allowance")
    def test_quota_concurrent(self, quota_adapter: Any, kit_runner: LoopRunner) -> None:
        async def one() -> bool:
            try:
                await quota_adapter.check_quota("kit.requests")
            except QuotaExceededError:
                return False
            return True

        async def body() -> list[bool]:
            with tenant_scope("race"):
                return list(await asyncio.gather(*(one() for _ in range(12))))

        assert sum(kit_runner.run(body())) == 5

    @clause(
        "tenant.quota.invalid",
        "a cost that is not a positive int, or an empty resource, raises InvalidInputError",
    )
    @pytest.mark.parametrize(
        ("resource", "cost"),
        [("kit.requests", 0), ("kit.requests", -1), ("", 1), ("kit.requests", 1.5)],
    )
    def test_quota_invalid(
        self, quota_adapter: Any, kit_runner: LoopRunner, resource: str, cost: Any
    ) -> None:
        async def body() -> None:
            with tenant_scope("t"):
                with pytest.raises(InvalidInputError):
                    await quota_adapter.check_quota(resource, cost)
                assert (await quota_adapter.check_quota("kit.requests")).remaining == 4

        kit_runner.run(body())

    @clause("tenant.quota.unlimited", "a resource with no quota is unlimited (remaining -1)")
    def test_quota_unlimited(self, quota_adapter: Any, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            with tenant_scope("t"):
                for _ in range(3):
                    status = await quota_adapter.check_quota("kit.unconfigured", 1000)
                    assert status.remaining == -1, status

        kit_runner.run(body())

    @clause("tenant.config.overrides", "the context for a tenant carries its configured overrides")
    def test_config_overrides(
        self, make_adapter: Factory, kit_runner: LoopRunner, kit_clock: FakeClock
    ) -> None:
        if not accepts_keyword(make_adapter, "tenant_config"):
            pytest.skip("the factory does not accept tenant_config=")
        overrides = {"acme": {"cache.default_ttl": 5, "model": "small"}}
        made = kit_runner.run(
            open_adapter(with_options(make_adapter, tenant_config=overrides), clock=kit_clock)
        )
        try:
            if not supports(made, TenantCapability.CONFIG_OVERRIDES):
                pytest.skip(f"{type(made).__name__} does not declare 'tenant.config_overrides'")

            def body() -> None:
                with made.with_tenant("acme") as ctx:
                    assert dict(ctx.config) == overrides["acme"]
                    got = current_tenant()
                    assert got is not None
                    assert dict(got.config) == overrides["acme"], "overrides not in the context"
                with made.with_tenant("other") as ctx:
                    assert dict(ctx.config) == {}, "another tenant got acme's overrides"
                token = made.set_context(TenantContext("acme"))
                got = current_tenant()
                assert got is not None
                assert got.config.get("model") == "small", "set_context dropped the overrides"
                made.reset_context(token)

            contextvars.Context().run(body)
        finally:
            kit_runner.run(close_adapter(made))

    @clause(
        "tenant.quota.model", "any sequence of checks behaves like the reference allowance model"
    )
    def test_state_machine(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        if not accepts_keyword(make_adapter, "quotas"):
            pytest.skip("the factory does not accept quotas=")
        run_machine(QuotaMachine, with_options(make_adapter, quotas=_quota_strings()), kit_settings)


async def _current_later() -> TenantContext | None:
    await asyncio.sleep(0)
    return current_tenant()


class QuotaMachine(AdapterMachine[Tenant]):
    """Per (tenant, resource) an allowance that checks draw down, all-or-nothing."""

    def __init__(self, factory: Factory, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.spent: dict[tuple[str, str], int] = {}
        self.enabled = supports(self.adapter, TenantCapability.QUOTAS)

    @rule(
        tenant=st.sampled_from(["a", "b", "a/b"]),
        resource=st.sampled_from(sorted(QUOTAS)),
        cost=st.integers(1, 8),
    )
    def check(self, tenant: str, resource: str, cost: int) -> None:
        if not self.enabled:
            return
        allowance = QUOTAS[resource]
        used = self.spent.get((tenant, resource), 0)

        async def call() -> Any:
            with tenant_scope(tenant):
                return await self.adapter.check_quota(resource, cost)

        if used + cost <= allowance:
            status = self.run(call())
            self.spent[(tenant, resource)] = used + cost
            assert status.remaining == allowance - used - cost, (
                f"{tenant}/{resource}: remaining {status.remaining}, model says "
                f"{allowance - used - cost}"
            )
        else:
            with pytest.raises(QuotaExceededError):
                self.run(call())
