"""Tenant: who the current call is for, carried in a context variable, and their quotas.

Contract
--------
* The current tenant lives in one `contextvars.ContextVar` shared by every adapter
  (read it with [current_tenant][portfolio_core.ports.tenant.current_tenant]), never in a
  thread-local: it follows
  ``asyncio.gather``, tasks, and threads started with ``asyncio.to_thread``, and a change in
  one task is invisible to its siblings.
* ``with_tenant`` sets the tenant for the body of a ``with`` block and restores the previous
  value on exit, also on error. ``set_context`` returns a token that ``reset_context`` uses
  to restore the previous value.
* Tenant-scoped adapters call [require_tenant][portfolio_core.ports.tenant.require_tenant], which
  raises
  [TenantRequiredError][portfolio_core.ports.errors.TenantRequiredError] when none is set (fail
  closed).
* Tenant adapters may hold per-tenant configuration overrides: the context they make current
  carries them in `TenantContext.config`, and tenant-scoped adapters read the keys
  they document (for example the caches' ``cache.default_ttl``).
* ``check_quota`` consumes ``cost`` units of ``resource`` for the current tenant and returns
  the remaining allowance, or raises
  [QuotaExceededError][portfolio_core.ports.errors.QuotaExceededError] (consuming nothing) when the
  allowance is spent (``retry_after`` says when it can succeed; it is ``None`` when ``cost``
  exceeds the whole allowance, which no wait can make succeed). Quotas are counted per
  tenant and per resource: one tenant's use never reduces another's allowance. A resource
  with no configured quota is unlimited (``remaining`` is then ``-1``); ``cost`` must be a
  positive int, else [InvalidInputError][portfolio_core.ports.errors.InvalidInputError]. With no
  tenant set, ``check_quota`` raises
  [TenantRequiredError][portfolio_core.ports.errors.TenantRequiredError].
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from portfolio_core.ports.errors import InvalidInputError, TenantRequiredError

__all__ = [
    "QuotaStatus",
    "Tenant",
    "TenantCapability",
    "TenantContext",
    "current_tenant",
    "require_tenant",
    "reset_current_tenant",
    "set_current_tenant",
    "tenant_scope",
]


class TenantCapability(StrEnum):
    QUOTAS = "tenant.quotas"
    SHARED_QUOTAS = "tenant.shared_quotas"
    """Quotas are counted across processes (e.g. in Redis)."""
    CONFIG_OVERRIDES = "tenant.config_overrides"


@dataclass(frozen=True, slots=True)
class TenantContext:
    """The tenant a call runs for, and per-tenant configuration overrides."""

    tenant_id: str
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tenant_id or not isinstance(self.tenant_id, str):
            raise InvalidInputError("tenant_id must be a non-empty string", field="tenant_id")


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """What remains of a tenant's allowance for a resource after a successful check."""

    tenant: str
    resource: str
    remaining: int
    reset_after: float | None = None


_CURRENT: ContextVar[TenantContext | None] = ContextVar("portfolio_core_tenant", default=None)


def current_tenant() -> TenantContext | None:
    """The tenant of the current context, or ``None``."""
    return _CURRENT.get()


def require_tenant() -> TenantContext:
    """The current tenant; raises
    [TenantRequiredError][portfolio_core.ports.tenant.TenantRequiredError] when none is set."""
    ctx = _CURRENT.get()
    if ctx is None:
        raise TenantRequiredError("this adapter is tenant scoped and no tenant is set")
    return ctx


def set_current_tenant(ctx: TenantContext | None) -> Token[TenantContext | None]:
    """Make ``ctx`` current in this context; returns the token for
    [reset_current_tenant][portfolio_core.ports.tenant.reset_current_tenant].

    Tenant adapters build ``set_context`` on this, so every adapter shares one variable.
    """
    return _CURRENT.set(ctx)


def reset_current_tenant(token: Token[TenantContext | None]) -> None:
    """Restore the tenant current before the matching
    [set_current_tenant][portfolio_core.ports.tenant.set_current_tenant].

    Raises ``ValueError``/``RuntimeError`` (from `contextvars`) for a token created in
    another context or already used.
    """
    _CURRENT.reset(token)


# former private names, still used by code written before the public ones existed
_set = set_current_tenant
_reset = reset_current_tenant


@contextmanager
def tenant_scope(tenant: str | TenantContext) -> Iterator[TenantContext]:
    """Run the body with ``tenant`` as the current tenant (the port-free helper)."""
    ctx = tenant if isinstance(tenant, TenantContext) else TenantContext(tenant)
    token = set_current_tenant(ctx)
    try:
        yield ctx
    finally:
        reset_current_tenant(token)


@runtime_checkable
class Tenant(Protocol):
    """Tenant context and quotas (context calls are sync, quota checks async)."""

    def get_context(self) -> TenantContext | None:
        """The current tenant, or ``None``."""
        ...

    def set_context(self, ctx: TenantContext) -> Token[TenantContext | None]:
        """Make ``ctx`` current in this context; returns the token to reset it."""
        ...

    def reset_context(self, token: Token[TenantContext | None]) -> None:
        """Restore the tenant that was current before the matching ``set_context``."""
        ...

    def with_tenant(self, tenant: str | TenantContext) -> Any:
        """A context manager making ``tenant`` current for its body."""
        ...

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        """Consume ``cost`` of ``resource`` for the current tenant or raise QuotaExceededError."""
        ...
