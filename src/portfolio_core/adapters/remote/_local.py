"""The parts of remote adapters that run in the caller's process.

A port member that is synchronous (the tenant's context helpers) or that applies a caller's
function to a caller's iterable (``Stream.transform``) is not sent anywhere: the remote
adapter implements it here, exactly as the port contract says, on the shared primitives of
the ports package.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from contextvars import Token
from typing import Any, TypeVar

from portfolio_core.adapters._shared import stream as shared_stream
from portfolio_core.ports.stream import StreamOptions
from portfolio_core.ports.tenant import (
    TenantContext,
    current_tenant,
    reset_current_tenant,
    set_current_tenant,
    tenant_scope,
)

__all__ = ["LOCAL", "iterate"]

T = TypeVar("T")
U = TypeVar("U")


iterate = shared_stream.iterate_items
"""Items of a sync or async iterable."""


def _get_context(self: object) -> TenantContext | None:
    """The current tenant, or ``None``."""
    return current_tenant()


def _set_context(self: object, ctx: TenantContext) -> Token[TenantContext | None]:
    """Make ``ctx`` current in this context; returns the token to reset it."""
    return set_current_tenant(ctx)


def _reset_context(self: object, token: Token[TenantContext | None]) -> None:
    """Restore the tenant that was current before the matching ``set_context``."""
    reset_current_tenant(token)


def _with_tenant(
    self: object, tenant: str | TenantContext
) -> AbstractContextManager[TenantContext]:
    """A context manager making ``tenant`` current for its body."""
    return tenant_scope(tenant)


def _transform(
    self: object,
    source: AsyncIterable[T],
    fn: Callable[[T], Awaitable[U]] | Callable[[T], U],
    opts: StreamOptions | None = None,
) -> AsyncIterator[U]:
    """Map ``fn`` over ``source`` in order, honouring ``opts.on_error`` and timeout (here:
    ``fn`` and ``source`` are the caller's, so nothing crosses the network)."""
    return shared_stream.transform(source, fn, opts)


#: port key -> member name -> local implementation
LOCAL: dict[str, dict[str, Callable[..., Any]]] = {
    "tenant": {
        "get_context": _get_context,
        "set_context": _set_context,
        "reset_context": _reset_context,
        "with_tenant": _with_tenant,
    },
    "stream": {"transform": _transform},
}
