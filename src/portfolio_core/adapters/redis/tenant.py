"""Tenant adapter whose quotas are counted in Redis, shared by every process."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from limits.aio.storage import RedisStorage
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.cache_keys import check_namespace
from portfolio_core.adapters._shared.tenant import QuotaTenant
from portfolio_core.adapters.redis._client import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    check_redis_url,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.tenant import TenantCapability

__all__ = ["RedisTenant", "RedisTenantConfig", "RedisTenantOverrides"]


class RedisTenantOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quotas: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)


class RedisTenantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    namespace: str = "portfolio"
    quotas: dict[str, str] = Field(default_factory=dict)
    tenants: dict[str, RedisTenantOverrides] = Field(default_factory=dict)
    connect_timeout: float = Field(DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(DEFAULT_CALL_TIMEOUT, gt=0)


class RedisTenant(QuotaTenant):
    """Quotas counted in Redis (``limits`` Redis storage, moving window, atomic Lua scripts),
    so every process sharing the server and ``namespace`` shares each tenant's allowance.

    Keys live under ``<namespace>:LIMITER/...``. Window times come from the ``limits``
    library (wall clock). Context handling is the same as `MemoryTenant`'s.
    Opening a connection takes at most ``connect_timeout`` seconds and a reply at most
    ``call_timeout``: past either, a quota check raises UnavailableError.
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        TenantCapability.QUOTAS,
        TenantCapability.SHARED_QUOTAS,
        TenantCapability.CONFIG_OVERRIDES,
    )
    config_model: ClassVar[type[BaseModel]] = RedisTenantConfig

    def __init__(
        self,
        url: str | SecretStr = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "portfolio",
        quotas: dict[str, str] | None = None,
        tenant_quotas: dict[str, dict[str, str]] | None = None,
        tenant_config: dict[str, dict[str, Any]] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        raw = check_redis_url(
            url.get_secret_value() if isinstance(url, SecretStr) else url, port="Tenant"
        )
        if raw.startswith("unix://"):  # limits' name for a Redis unix socket
            raw = "async+redis+" + raw
        elif raw.startswith(("redis://", "rediss://")):
            raw = "async+" + raw
        storage = RedisStorage(
            raw,
            implementation="redispy",
            key_prefix=check_namespace(namespace),
            socket_connect_timeout=connect_timeout,
            socket_timeout=call_timeout,
        )
        super().__init__(
            storage,
            quotas=quotas,
            tenant_quotas=tenant_quotas,
            tenant_config=tenant_config,
            namespace=namespace,
        )

    @classmethod
    def from_config(cls, config: RedisTenantConfig) -> Self:
        return cls(
            config.url,
            namespace=config.namespace,
            quotas=config.quotas,
            tenant_quotas={t: o.quotas for t, o in config.tenants.items()},
            tenant_config={t: o.config for t, o in config.tenants.items()},
            connect_timeout=config.connect_timeout,
            call_timeout=config.call_timeout,
        )

    def __repr__(self) -> str:
        return f"RedisTenant(namespace={self.namespace!r}, quotas={sorted(self._quotas)})"

    async def ping(self) -> None:
        from portfolio_core.ports.errors import UnavailableError

        if not await self._storage.check():
            raise UnavailableError("redis quota storage is unreachable", port="Tenant")
