"""What wraps an adapter at the port boundary: telemetry and protection.

`wrap` is the one entry point the registry uses; `boundary_problems` validates a
manifest entry's ``telemetry:`` and ``protection:`` sections without building anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from portfolio_core.boundary._proxy import BoundaryHandle, BulkheadFullError, build_proxy
from portfolio_core.boundary.breaker import Breaker, BreakerStorageError, CircuitOpenError
from portfolio_core.boundary.config import (
    OutboxConfig,
    ProtectionConfig,
    TelemetryConfig,
    boundary_problems,
    parse_sections,
)
from portfolio_core.boundary.outbox import (
    Outbox,
    OutboxAcceptedError,
    OutboxFullError,
    OutboxProxy,
    OutboxStatus,
    Pending,
    outbox_of,
)
from portfolio_core.boundary.ratelimit import RateLimiter, RateLimitStorageError
from portfolio_core.boundary.stats import MethodPerformance, MethodStats, PerformanceMonitor
from portfolio_core.boundary.telemetry import Telemetry, default_telemetry
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.job_queue import JobQueue

__all__ = [
    "BoundaryHandle",
    "Breaker",
    "BreakerStorageError",
    "BulkheadFullError",
    "CircuitOpenError",
    "MethodPerformance",
    "MethodStats",
    "Outbox",
    "OutboxAcceptedError",
    "OutboxConfig",
    "OutboxFullError",
    "OutboxStatus",
    "Pending",
    "PerformanceMonitor",
    "ProtectionConfig",
    "RateLimitStorageError",
    "RateLimiter",
    "Telemetry",
    "TelemetryConfig",
    "boundary_of",
    "boundary_problems",
    "default_telemetry",
    "outbox_of",
    "unwrap",
    "wrap",
]

T = TypeVar("T")


def wrap(
    adapter: T,
    *,
    port: PortInfo,
    name: str,
    adapter_type: str,
    telemetry: Mapping[str, Any] | TelemetryConfig | None,
    protection: Mapping[str, Any] | ProtectionConfig | None,
    fallback: object | None = None,
    runtime: Telemetry | None = None,
    clock: Callable[[], float] = time.monotonic,
    outbox_store: JobQueue | None = None,
) -> T:
    """Wrap ``adapter`` (an adapter of ``port`` named ``name`` in the manifest) with the
    configured telemetry and protection.

    Returns ``adapter`` itself when neither section is configured (zero overhead). Otherwise
    returns a proxy that satisfies the port protocol, forwards ``capabilities`` and every
    other attribute, and exposes ``proxy.boundary`` (`BoundaryHandle`) and
    ``proxy.boundary_stats`` (per-method `MethodStats`).

    ``fallback`` is another adapter of the same port, called when the wrapped one fails with
    a retryable port error after all protection. ``runtime`` chooses the OpenTelemetry
    providers (default: the global ones); ``clock`` is the breaker's monotonic clock.
    ``protection.outbox`` puts an `OutboxProxy` outermost (it sees what the other
    protections let through); it records into ``outbox_store`` when given, else into the
    store its configuration names (a SQLite file by default).

    Raises ``ValueError`` listing every problem when a section is invalid, ``TypeError``
    naming every missing method when ``adapter`` or ``fallback`` lacks a method of the port
    (checked only when a proxy is built), and ``UnavailableError`` when a Redis-backed
    breaker cannot reach Redis while wiring.
    """
    if telemetry is None and protection is None and fallback is None:
        return adapter
    tel = telemetry if isinstance(telemetry, TelemetryConfig) else None
    prot = protection if isinstance(protection, ProtectionConfig) else None
    raw_tel = None if isinstance(telemetry, TelemetryConfig) else telemetry
    raw_prot = None if isinstance(protection, ProtectionConfig) else protection
    if raw_tel is not None or raw_prot is not None:
        parsed_tel, parsed_prot, problems = parse_sections(port, raw_tel, raw_prot)
        if problems:
            listed = "; ".join(".".join(map(str, path)) + ": " + msg for path, msg in problems)
            raise ValueError(f"invalid boundary configuration for {name!r}: {listed}")
        tel = tel or parsed_tel
        prot = prot or parsed_prot
    if prot is not None and prot.fallback is not None and fallback is None:
        raise ValueError(
            f"{name!r}: protection.fallback names {prot.fallback.adapter!r} "
            "but no fallback adapter was passed"
        )
    outbox = prot.outbox if prot is not None else None
    if prot is not None and outbox is not None:
        prot = prot.model_copy(update={"outbox": None})
    if prot is not None and prot.is_empty and fallback is None:
        prot = None
    if tel is None and prot is None and fallback is None:
        if outbox is not None:
            return cast(T, _with_outbox(adapter, outbox, port, name, outbox_store))
        return adapter
    proxy = build_proxy(
        adapter,
        port=port,
        name=name,
        adapter_type=adapter_type,
        telemetry_config=tel,
        protection_config=prot,
        fallback=fallback,
        runtime=runtime or default_telemetry(),
        clock=clock,
    )
    if outbox is not None:
        return cast(T, _with_outbox(proxy, outbox, port, name, outbox_store))
    return cast(T, proxy)


def _with_outbox(
    inner: object, config: OutboxConfig, port: PortInfo, name: str, store: JobQueue | None
) -> OutboxProxy:
    return OutboxProxy(inner, Outbox(config, name=name, port=port, store=store))


def boundary_of(obj: object) -> BoundaryHandle | None:
    """The `BoundaryHandle` of a proxy made by `wrap`, or ``None`` for a raw
    adapter."""
    handle = getattr(type(obj), "__slots__", None) and getattr(obj, "boundary", None)
    return handle if isinstance(handle, BoundaryHandle) else None


def unwrap(obj: T) -> T:
    """The adapter inside a boundary proxy or outbox (``obj`` itself when it is neither)."""
    if isinstance(obj, OutboxProxy):
        obj = obj.inner
    handle = boundary_of(obj)
    return cast(T, handle.target) if handle is not None else obj
