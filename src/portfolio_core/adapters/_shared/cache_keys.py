"""Argument checks and tenant handling every Cache adapter applies the same way."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.tenant import require_tenant
from portfolio_core.ports.validation import check_cache_key as check_key
from portfolio_core.ports.validation import check_ttl

__all__ = ["DEFAULT_TTL_KEY", "check_key", "check_namespace", "check_ttl", "scope", "tenant_ttl"]

DEFAULT_TTL_KEY = "cache.default_ttl"
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise InvalidInputError(
            "namespace must be 1-64 characters of letters, digits, '_', '.', '-'",
            field="namespace",
        )
    if not namespace.strip("."):
        raise InvalidInputError(
            f"namespace {namespace!r} is only dots, which file systems read as folders "
            "('.' this one, '..' its parent)",
            field="namespace",
        )
    return namespace


def check_items(items: Mapping[str, Any]) -> None:
    if not isinstance(items, Mapping):
        raise InvalidInputError("put_many takes a mapping of key to value", field="items")
    for key in items:
        check_key(key)


def scope(tenant_scoped: bool) -> str | None:
    """The current tenant id for a scoped adapter (fail closed), ``None`` when unscoped."""
    if not tenant_scoped:
        return None
    return require_tenant().tenant_id


def tenant_ttl(ttl: float | None, tenant_scoped: bool) -> float | None:
    """``ttl``, or the current tenant's ``cache.default_ttl`` override for scoped adapters."""
    if ttl is not None or not tenant_scoped:
        return ttl
    override = require_tenant().config.get(DEFAULT_TTL_KEY)
    return check_ttl(override) if override is not None else None
