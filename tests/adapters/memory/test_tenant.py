"""MemoryTenant: context propagation (gather, tasks, to_thread), fail closed, quotas, overrides."""

from __future__ import annotations

import asyncio

import pytest

from portfolio_core.adapters.memory.cache import MemoryCache
from portfolio_core.adapters.memory.tenant import MemoryTenant, MemoryTenantConfig
from portfolio_core.ports import (
    InvalidInputError,
    QuotaExceededError,
    Tenant,
    TenantContext,
    TenantRequiredError,
    current_tenant,
)
from portfolio_core.testing.contracts.tenant import TenantContract


def test_satisfies_the_port() -> None:
    assert isinstance(MemoryTenant(), Tenant)


async def test_context_follows_gather_tasks_and_threads() -> None:
    tenants = MemoryTenant()

    async def who(name: str) -> tuple[str, str | None, str | None]:
        with tenants.with_tenant(name):
            await asyncio.sleep(0.01)
            in_thread = await asyncio.to_thread(lambda: current_tenant())
            in_task = await asyncio.create_task(asyncio.sleep(0, current_tenant()))
            assert in_thread is not None
            assert in_task is not None
            return name, in_thread.tenant_id, in_task.tenant_id

    results = await asyncio.gather(*(who(f"t{i}") for i in range(10)))
    assert all(name == a == b for name, a, b in results)
    assert tenants.get_context() is None


async def test_a_change_in_one_task_is_invisible_to_siblings() -> None:
    tenants = MemoryTenant()
    seen: list[str | None] = []

    async def setter() -> None:
        tenants.set_context(TenantContext("mine"))
        await asyncio.sleep(0.01)

    async def reader() -> None:
        await asyncio.sleep(0.02)
        ctx = tenants.get_context()
        seen.append(None if ctx is None else ctx.tenant_id)

    with tenants.with_tenant("outer"):
        await asyncio.gather(setter(), reader())
        assert seen == ["outer"]


def test_set_and_reset_restore_previous() -> None:
    tenants = MemoryTenant()
    token = tenants.set_context(TenantContext("a"))
    inner = tenants.set_context(TenantContext("b"))
    assert current_tenant() == TenantContext("b")
    tenants.reset_context(inner)
    assert current_tenant() == TenantContext("a")
    tenants.reset_context(token)
    assert current_tenant() is None
    with pytest.raises(InvalidInputError):
        tenants.reset_context(token)


async def test_with_tenant_restores_on_error() -> None:
    tenants = MemoryTenant()
    with pytest.raises(RuntimeError), tenants.with_tenant("a"):
        raise RuntimeError
    assert current_tenant() is None


async def test_no_tenant_fails_closed() -> None:
    tenants = MemoryTenant(quotas={"requests": "5/minute"})
    with pytest.raises(TenantRequiredError):
        await tenants.check_quota("requests")
    with pytest.raises(TenantRequiredError):
        await MemoryCache(tenant_scoped=True).get("k")


async def test_quota_refusal_consumes_nothing_and_is_per_tenant() -> None:
    tenants = MemoryTenant(
        quotas={"tokens": "10/hour"}, tenant_quotas={"big": {"tokens": "100/hour"}}
    )
    with tenants.with_tenant("a"):
        status = await tenants.check_quota("tokens", 7)
        assert status.remaining == 3
        with pytest.raises(QuotaExceededError) as info:
            await tenants.check_quota("tokens", 4)
        assert info.value.tenant == "a"
        assert info.value.resource == "tokens"
        assert info.value.retry_after is not None
        assert 0 < info.value.retry_after <= 3600
        assert (await tenants.check_quota("tokens", 3)).remaining == 0
        with pytest.raises(QuotaExceededError):
            await tenants.check_quota("tokens", 11)
        assert (await tenants.check_quota("unlimited", 1000)).remaining == -1
    with tenants.with_tenant("b"):
        assert (await tenants.quota_status("tokens")).remaining == 10
    with tenants.with_tenant("big"):
        assert (await tenants.check_quota("tokens", 50)).remaining == 50
    with tenants.with_tenant("a"), pytest.raises(InvalidInputError):
        await tenants.check_quota("tokens", 0)


async def test_config_overrides_reach_scoped_adapters() -> None:
    tenants = MemoryTenant.from_config(
        MemoryTenantConfig.model_validate(
            {"tenants": {"acme": {"config": {"cache.default_ttl": 5}, "quotas": {"r": "1/day"}}}}
        )
    )
    now = [0.0]
    cache = MemoryCache(tenant_scoped=True, clock=lambda: now[0])
    with tenants.with_tenant("acme") as ctx:
        assert ctx.config == {"cache.default_ttl": 5}
        await cache.put("k", 1)
        await tenants.check_quota("r")
        with pytest.raises(QuotaExceededError):
            await tenants.check_quota("r")
    with tenants.with_tenant("other"):
        await cache.put("k", 1)
        await tenants.check_quota("r")
    now[0] = 6
    with tenants.with_tenant("acme"):
        assert await cache.get("k") is None
    with tenants.with_tenant("other"):
        assert await cache.get("k") == 1


def test_bad_quota_string_is_rejected_at_construction() -> None:
    with pytest.raises(InvalidInputError):
        MemoryTenant(quotas={"r": "lots"})


class TestMemoryTenantContract(TenantContract):
    @pytest.fixture
    def make_adapter(self) -> type[MemoryTenant]:
        return MemoryTenant
