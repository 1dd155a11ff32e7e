"""RedisTenant: quotas shared by every instance on the server, refusal consumes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from portfolio_core.adapters.redis.tenant import RedisTenant, RedisTenantConfig
from portfolio_core.ports import QuotaExceededError, Tenant, supports
from portfolio_core.testing.contracts.tenant import TenantContract


async def _drop(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        async for name in client.scan_iter(match=prefix + "*", count=500):
            await client.unlink(name)
    finally:
        await client.aclose()


async def test_quotas_are_shared_between_instances(redis_url: str, unique_name: str) -> None:
    config = RedisTenantConfig(
        url=SecretStr(redis_url),
        namespace=unique_name,
        quotas={"requests": "3/minute"},
        tenants={"vip": {"quotas": {"requests": "10/minute"}, "config": {"x": 1}}},
    )
    one = RedisTenant.from_config(config)
    two = RedisTenant.from_config(config)
    assert isinstance(one, Tenant)
    assert supports(one, "tenant.shared_quotas")
    try:
        await one.ping()
        with one.with_tenant("a"):
            await one.check_quota("requests", 2)
            with pytest.raises(QuotaExceededError) as info:
                await two.check_quota("requests", 2)
            assert info.value.retry_after is not None
            assert (await two.check_quota("requests", 1)).remaining == 0
        with one.with_tenant("vip") as ctx:
            assert ctx.config == {"x": 1}
            assert (await two.check_quota("requests", 5)).remaining == 5
        assert "redis://" not in repr(one)
    finally:
        await _drop(redis_url, unique_name)


class TestRedisTenantContract(TenantContract):
    @pytest.fixture
    def make_adapter(self, redis_url: str, unique_name: str) -> Iterator[Any]:
        def make(
            quotas: dict[str, str] | None = None,
            tenant_config: dict[str, dict[str, Any]] | None = None,
        ) -> RedisTenant:
            return RedisTenant(
                redis_url,
                namespace=f"{unique_name}.{uuid.uuid4().hex[:8]}",
                quotas=quotas,
                tenant_config=tenant_config,
            )

        yield make
        asyncio.run(_drop(redis_url, unique_name))
