"""Deliberately broken MemoryTenant variants: each must make the Tenant contract suite fail.

Every class names, in ``clause``, the clause its bug breaks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import Token
from typing import Any

from portfolio_core.adapters.memory.tenant import MemoryTenant
from portfolio_core.ports import (
    QuotaExceededError,
    QuotaStatus,
    TenantContext,
    current_tenant,
    reset_current_tenant,
    set_current_tenant,
)


class RefusalConsumes(MemoryTenant):
    clause = "tenant.quota.refusal"

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        try:
            return await super().check_quota(resource, cost)
        except QuotaExceededError:
            status = await self.quota_status(resource)
            if status.remaining > 0:
                await super().check_quota(resource, status.remaining)
            raise


class RetryAfterMissing(MemoryTenant):
    clause = "tenant.quota.refusal"

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        try:
            return await super().check_quota(resource, cost)
        except QuotaExceededError as exc:
            raise QuotaExceededError(
                exc.message, tenant=exc.tenant, resource=exc.resource, retry_after=None
            ) from None


class QuotaSharedAcrossTenants(MemoryTenant):
    clause = "tenant.quota.per_tenant"

    def _ids(self, tenant: str, resource: str) -> tuple[str, str, str]:
        return super()._ids("everyone", resource)


class NotFailClosed(MemoryTenant):
    clause = "tenant.quota.fail_closed"

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        if current_tenant() is None:
            with self.with_tenant("anonymous"):
                return await super().check_quota(resource, cost)
        return await super().check_quota(resource, cost)


class WithTenantLeaksOnError(MemoryTenant):
    clause = "tenant.with_tenant.scope"

    @contextmanager
    def with_tenant(self, tenant: str | TenantContext) -> Iterator[TenantContext]:
        ctx = self.context_for(tenant)
        token = set_current_tenant(ctx)
        yield ctx
        reset_current_tenant(token)


class ThreadLocalContext(MemoryTenant):
    """Keeps the tenant in a thread-local: lost in to_thread, shared between tasks."""

    clause = "tenant.context.async"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._local = threading.local()

    def get_context(self) -> TenantContext | None:
        ctx: TenantContext | None = getattr(self._local, "ctx", None)
        return ctx

    @contextmanager
    def with_tenant(self, tenant: str | TenantContext) -> Iterator[TenantContext]:
        ctx = self.context_for(tenant)
        previous = getattr(self._local, "ctx", None)
        self._local.ctx = ctx
        try:
            with super().with_tenant(ctx):
                yield ctx
        finally:
            self._local.ctx = previous


class ResetIgnoresToken(MemoryTenant):
    clause = "tenant.set_context.token"

    def reset_context(self, token: Token[TenantContext | None]) -> None:
        set_current_tenant(None)


class RemainingOffByOne(MemoryTenant):
    clause = "tenant.quota.consume"

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        status = await super().check_quota(resource, cost)
        return QuotaStatus(status.tenant, status.resource, status.remaining + 1)


class CostIgnored(MemoryTenant):
    clause = "tenant.quota.consume"

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        if isinstance(cost, int) and cost > 1:
            cost = 1
        return await super().check_quota(resource, cost)


class OverridesIgnored(MemoryTenant):
    clause = "tenant.config.overrides"

    def context_for(self, tenant: str | TenantContext) -> TenantContext:
        return TenantContext(tenant if isinstance(tenant, str) else tenant.tenant_id)


class BadCostAccepted(MemoryTenant):
    clause = "tenant.quota.invalid"

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        if not isinstance(cost, int) or cost < 1:
            tenant = current_tenant()
            return QuotaStatus(tenant.tenant_id if tenant else "", resource, remaining=0)
        return await super().check_quota(resource, cost)


class UnlimitedReportsZero(MemoryTenant):
    clause = "tenant.quota.unlimited"

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        status = await super().check_quota(resource, cost)
        if status.remaining == -1:
            return QuotaStatus(status.tenant, resource, remaining=0)
        return status


class WindowReadAsHour(MemoryTenant):
    """Reads every quota's window as an hour: a spent per-second allowance never comes back
    within the test."""

    clause = "tenant.quota.window"

    def __init__(
        self,
        *,
        quotas: dict[str, str] | None = None,
        tenant_quotas: dict[str, dict[str, str]] | None = None,
        tenant_config: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        hourly = {k: v.replace("second", "hour") for k, v in (quotas or {}).items()}
        super().__init__(quotas=hourly, tenant_quotas=tenant_quotas, tenant_config=tenant_config)


class OverAllowanceWaits(MemoryTenant):
    """Refuses a cost above the whole allowance as if waiting for the window would help."""

    clause = "tenant.quota.over_allowance"

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        try:
            return await super().check_quota(resource, cost)
        except QuotaExceededError as exc:
            raise QuotaExceededError(
                exc.message, tenant=exc.tenant, resource=exc.resource, retry_after=60.0
            ) from None


VARIANTS: list[type[MemoryTenant]] = [
    RefusalConsumes,
    RetryAfterMissing,
    QuotaSharedAcrossTenants,
    NotFailClosed,
    WithTenantLeaksOnError,
    ThreadLocalContext,
    ResetIgnoresToken,
    RemainingOffByOne,
    CostIgnored,
    OverridesIgnored,
    BadCostAccepted,
    UnlimitedReportsZero,
    WindowReadAsHour,
    OverAllowanceWaits,
]
