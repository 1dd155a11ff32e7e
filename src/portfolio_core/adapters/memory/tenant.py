"""Tenant adapter for one process: context in the shared ContextVar, quotas in memory."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from limits.aio.storage import MemoryStorage
from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.tenant import QuotaTenant
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.tenant import TenantCapability

__all__ = ["MemoryTenant", "MemoryTenantConfig", "TenantOverrides"]


class TenantOverrides(BaseModel):
    """What one tenant gets instead of the defaults."""

    model_config = ConfigDict(extra="forbid")

    quotas: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)


class MemoryTenantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quotas: dict[str, str] = Field(default_factory=dict)
    """Default quota per resource for every tenant, e.g. ``{"requests": "100/minute"}``."""
    tenants: dict[str, TenantOverrides] = Field(default_factory=dict)


class MemoryTenant(QuotaTenant):
    """Quotas counted in this process (``limits`` memory storage, moving window).

    ``quotas`` maps a resource to a ``limits`` string (``"100/minute"``, ``"10000/day"``);
    ``tenant_quotas`` and ``tenant_config`` override them per tenant. The context made
    current by ``with_tenant``/``set_context`` carries the tenant's ``config`` overrides.
    Quota windows follow wall-clock time (``limits`` owns the clock).
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        TenantCapability.QUOTAS, TenantCapability.CONFIG_OVERRIDES
    )
    config_model: ClassVar[type[BaseModel]] = MemoryTenantConfig

    def __init__(
        self,
        *,
        quotas: dict[str, str] | None = None,
        tenant_quotas: dict[str, dict[str, str]] | None = None,
        tenant_config: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            MemoryStorage(),
            quotas=quotas,
            tenant_quotas=tenant_quotas,
            tenant_config=tenant_config,
            namespace="m",
        )

    @classmethod
    def from_config(cls, config: MemoryTenantConfig) -> Self:
        return cls(
            quotas=config.quotas,
            tenant_quotas={t: o.quotas for t, o in config.tenants.items()},
            tenant_config={t: o.config for t, o in config.tenants.items()},
        )

    def __repr__(self) -> str:
        return f"MemoryTenant(quotas={sorted(self._quotas)})"
