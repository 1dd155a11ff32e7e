"""Tenant context plus quotas counted by the ``limits`` library (storage chosen by the adapter)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token
from typing import Any

import limits
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from portfolio_core.ports.errors import InvalidInputError, QuotaExceededError, UnavailableError
from portfolio_core.ports.tenant import (
    QuotaStatus,
    TenantContext,
    current_tenant,
    require_tenant,
    reset_current_tenant,
    set_current_tenant,
)

__all__ = ["QuotaTenant", "parse_quotas"]


def parse_quotas(quotas: Mapping[str, str], *, field: str) -> dict[str, limits.RateLimitItem]:
    """``{"requests": "100/minute"}`` -> parsed ``limits`` items; bad strings raise early."""
    parsed: dict[str, limits.RateLimitItem] = {}
    for resource, text in quotas.items():
        if not resource or not isinstance(resource, str):
            raise InvalidInputError("quota resource names are non-empty strings", field=field)
        try:
            parsed[resource] = limits.parse(text)
        except ValueError as exc:
            raise InvalidInputError(
                f"quota {resource!r}: {text!r} is not a limit like '100/minute'", field=field
            ) from exc
    return parsed


def _ident(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=") or "-"


class QuotaTenant:
    """Shared behaviour of the tenant adapters; subclasses choose the ``limits`` storage.

    Quotas use the moving-window strategy: a check either takes ``cost`` units atomically or
    takes none, so a refusal consumes nothing.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        quotas: Mapping[str, str] | None = None,
        tenant_quotas: Mapping[str, Mapping[str, str]] | None = None,
        tenant_config: Mapping[str, Mapping[str, Any]] | None = None,
        namespace: str = "portfolio",
    ) -> None:
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._quotas = parse_quotas(quotas or {}, field="quotas")
        self._tenant_quotas = {
            tenant: parse_quotas(q, field=f"tenant_quotas.{tenant}")
            for tenant, q in (tenant_quotas or {}).items()
        }
        self._tenant_config = {t: dict(c) for t, c in (tenant_config or {}).items()}
        self.namespace = namespace

    # -- context ---------------------------------------------------------------------------

    def context_for(self, tenant: str | TenantContext) -> TenantContext:
        """The context for ``tenant`` with its configured overrides (explicit config wins)."""
        if isinstance(tenant, TenantContext):
            base = self._tenant_config.get(tenant.tenant_id, {})
            return TenantContext(tenant.tenant_id, {**base, **tenant.config})
        return TenantContext(tenant, dict(self._tenant_config.get(tenant, {})))

    def get_context(self) -> TenantContext | None:
        return current_tenant()

    def set_context(self, ctx: TenantContext) -> Token[TenantContext | None]:
        if not isinstance(ctx, TenantContext):
            raise InvalidInputError("set_context takes a TenantContext", field="ctx")
        return set_current_tenant(self.context_for(ctx))

    def reset_context(self, token: Token[TenantContext | None]) -> None:
        try:
            reset_current_tenant(token)
        except (ValueError, RuntimeError) as exc:
            raise InvalidInputError(f"cannot reset tenant context: {exc}", field="token") from exc

    @contextmanager
    def with_tenant(self, tenant: str | TenantContext) -> Iterator[TenantContext]:
        ctx = self.context_for(tenant)
        token = set_current_tenant(ctx)
        try:
            yield ctx
        finally:
            reset_current_tenant(token)

    # -- quotas ----------------------------------------------------------------------------

    def _limit(self, tenant: str, resource: str) -> limits.RateLimitItem | None:
        specific = self._tenant_quotas.get(tenant, {})
        return specific.get(resource, self._quotas.get(resource))

    def _ids(self, tenant: str, resource: str) -> tuple[str, str, str]:
        return (self.namespace, _ident(tenant), _ident(resource))

    async def quota_status(self, resource: str) -> QuotaStatus:
        """What remains of ``resource`` for the current tenant, consuming nothing."""
        tenant = require_tenant().tenant_id
        if not isinstance(resource, str) or not resource:
            raise InvalidInputError("resource must be a non-empty string", field="resource")
        item = self._limit(tenant, resource)
        if item is None:
            return QuotaStatus(tenant, resource, remaining=-1)
        try:
            stats = await self._limiter.get_window_stats(item, *self._ids(tenant, resource))
        except Exception as exc:
            raise UnavailableError(f"quota storage failed: {type(exc).__name__}") from exc
        return QuotaStatus(
            tenant, resource, stats.remaining, max(0.0, stats.reset_time - time.time())
        )

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        tenant = require_tenant().tenant_id
        if not isinstance(resource, str) or not resource:
            raise InvalidInputError("resource must be a non-empty string", field="resource")
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise InvalidInputError("cost must be a positive int", field="cost")
        item = self._limit(tenant, resource)
        if item is None:
            return QuotaStatus(tenant, resource, remaining=-1)
        if cost > item.amount:
            raise QuotaExceededError(
                f"cost {cost} exceeds the whole {resource!r} quota of tenant {tenant!r}",
                tenant=tenant,
                resource=resource,
                retry_after=None,
                port="Tenant",
            )
        ids = self._ids(tenant, resource)
        try:
            taken = await self._limiter.hit(item, *ids, cost=cost)
            stats = await self._limiter.get_window_stats(item, *ids)
        except Exception as exc:
            raise UnavailableError(f"quota storage failed: {type(exc).__name__}") from exc
        reset_after = max(0.0, stats.reset_time - time.time())
        if not taken:
            raise QuotaExceededError(
                f"tenant {tenant!r} has spent its {resource!r} quota",
                tenant=tenant,
                resource=resource,
                retry_after=reset_after,
                port="Tenant",
            )
        return QuotaStatus(tenant, resource, stats.remaining, reset_after)
