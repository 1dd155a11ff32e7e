"""The proxy the boundary hands out in place of an adapter.

One proxy class is built per port and cached (its methods only dispatch to the instance's
guards, so it does not depend on the configuration); each wrapped adapter gets one instance
holding one `Guard` per protocol method. What a
guard runs, and in which order, is described in `portfolio_core.boundary._pipeline`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import structlog

from portfolio_core.boundary._pipeline import BulkheadFullError, Guard, admission_layers
from portfolio_core.boundary.breaker import Breaker
from portfolio_core.boundary.config import ProtectionConfig, TelemetryConfig
from portfolio_core.boundary.ratelimit import RateLimiter
from portfolio_core.boundary.stats import BoundedLabels, MethodStats
from portfolio_core.boundary.telemetry import CostLedger, Telemetry
from portfolio_core.boundary.timeline import publish_transition
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.introspection import MemberKind, members_of

__all__ = ["BoundaryHandle", "BulkheadFullError", "build_proxy", "missing_methods"]

_log = structlog.get_logger("portfolio_core.boundary")

GENAI_PORTS = frozenset({"llm", "router", "agent"})


class BoundaryHandle:
    """What a proxy exposes about its boundary: the target, per-method stats, the breaker,
    the limiter and the cost ledger (``proxy.boundary``)."""

    def __init__(
        self,
        *,
        target: object,
        port: PortInfo,
        name: str,
        adapter_type: str,
        stats: Mapping[str, MethodStats],
        breaker: Breaker | None,
        limiter: RateLimiter | None,
        ledger: CostLedger | None,
        telemetry: TelemetryConfig | None,
        protection: ProtectionConfig | None,
    ) -> None:
        self.target = target
        self.port = port
        self.name = name
        self.adapter_type = adapter_type
        self.stats = stats
        self.breaker = breaker
        self.limiter = limiter
        self.cost = ledger
        self.telemetry = telemetry
        self.protection = protection

    def record_embeddings(self, count: int, model: str | None = None) -> None:
        """Record a cost event for ``count`` embeddings computed by the adapter."""
        if self.cost is not None:
            self.cost.record(model, embeddings=count)


def _make_coroutine(name: str) -> Callable[..., Any]:
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._pc_guards[name].acall(args, kwargs)

    method.__name__ = name
    return method


def _make_async_iterator(name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return self._pc_guards[name].aiter(args, kwargs)  # type: ignore[no-any-return]

    method.__name__ = name
    return method


def _make_sync(name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        guard = self._pc_guards.get(name)
        if guard is None:
            return getattr(self._pc_target, name)(*args, **kwargs)
        return guard.call(args, kwargs)

    method.__name__ = name
    return method


def _make_attribute(name: str) -> property:
    def fget(self: Any) -> Any:
        return getattr(self._pc_target, name)

    return property(fget, doc=f"Forwarded from the wrapped adapter: {name}.")


_CLASSES: dict[tuple[str, type], type] = {}
_CLASSES_LOCK = threading.Lock()


def _proxy_class(port: PortInfo) -> type:
    """The proxy class of ``port``: built once per port, whatever the configuration."""
    key = (port.key, port.protocol)
    cls = _CLASSES.get(key)
    if cls is not None:
        return cls
    namespace: dict[str, Any] = {}
    for declared in members_of(port.protocol):
        name, kind = declared.name, declared.kind
        if kind is MemberKind.COROUTINE:
            namespace[name] = _make_coroutine(name)
        elif kind is MemberKind.ASYNC_ITERATOR:
            namespace[name] = _make_async_iterator(name)
        elif kind is MemberKind.SYNC:
            namespace[name] = _make_sync(name)
        else:
            namespace[name] = _make_attribute(name)

    def capabilities(self: Any) -> frozenset[str]:
        from portfolio_core.ports.capabilities import capabilities_of

        return capabilities_of(self._pc_target)

    def __getattr__(self: Any, attr: str) -> Any:
        if attr.startswith("_pc_"):
            raise AttributeError(attr)
        return getattr(object.__getattribute__(self, "_pc_target"), attr)

    def __repr__(self: Any) -> str:
        return f"<{port.name} boundary proxy of {self.boundary.name!r}: {self._pc_target!r}>"

    namespace.update(
        {
            "capabilities": property(capabilities, doc="The wrapped adapter's capabilities."),
            "__getattr__": __getattr__,
            "__repr__": __repr__,
            "__slots__": ("_pc_target", "_pc_guards", "boundary", "boundary_stats"),
            "__doc__": f"Boundary proxy for the {port.name} port (telemetry and protection).",
        }
    )
    with _CLASSES_LOCK:
        cls = _CLASSES.get(key)
        if cls is None:
            cls = type(f"{port.name}BoundaryProxy", (), namespace)
            _CLASSES[key] = cls
    return cls


def missing_methods(adapter: object, port: PortInfo) -> list[str]:
    """The methods of ``port`` that ``adapter`` does not have (or has but cannot call)."""
    return [
        m.name
        for m in members_of(port.protocol)
        if m.is_method and not callable(getattr(adapter, m.name, None))
    ]


def build_proxy(
    adapter: object,
    *,
    port: PortInfo,
    name: str,
    adapter_type: str,
    telemetry_config: TelemetryConfig | None,
    protection_config: ProtectionConfig | None,
    fallback: object | None,
    runtime: Telemetry,
    clock: Callable[[], float] = time.monotonic,
) -> object:
    """Build the proxy instance (see `portfolio_core.boundary.wrap`).

    Raises ``TypeError`` naming every missing member when ``adapter`` (or ``fallback``) lacks
    a method of the port.
    """
    for role, candidate in (("adapter", adapter), ("fallback", fallback)):
        missing = missing_methods(candidate, port) if candidate is not None else []
        if missing:
            raise TypeError(
                f"cannot wrap {type(candidate).__name__} ({role} {name!r}) as a {port.name}: "
                f"it has no {', '.join(m + '()' for m in missing)}"
            )
    tel = telemetry_config
    prot = protection_config
    metrics_on = tel is not None and tel.metrics
    spans_on = tel is not None and tel.spans_for(port)
    labels = BoundedLabels(tel.max_label_values if tel is not None else 32)
    tracer = runtime.tracer if spans_on else None
    ledger: CostLedger | None = None
    if tel is not None and tel.cost.enabled and port.key in GENAI_PORTS:
        ledger = CostLedger(port.key, name, tel.cost, labels)

    fail_open = prot is None or prot.on_storage_error.value == "open"
    limiter: RateLimiter | None = None
    breaker: Breaker | None = None
    if prot is not None and prot.rate_limit is not None:
        rl = prot.rate_limit
        limiter = RateLimiter(
            rl.limit,
            key=f"{rl.key_prefix}:{port.key}:{name}",
            strategy=rl.strategy.value,
            storage=rl.storage.get_secret_value(),
            per_tenant=rl.per_tenant,
            lease=rl.lease,
            is_async=port.is_async,
            fail_open=fail_open,
        )
    if prot is not None and prot.circuit_breaker is not None:
        from portfolio_core.boundary.breaker import make_storage

        bc = prot.circuit_breaker
        breaker_name = bc.name or f"portfolio_core:{port.key}:{name}"
        breaker = Breaker(
            breaker_name,
            fail_max=bc.fail_max,
            reset_timeout=bc.reset_timeout,
            success_threshold=bc.success_threshold,
            storage=make_storage(bc.storage.get_secret_value(), breaker_name, fail_open),
            clock=clock,
            fail_open_on_storage_error=fail_open,
        )
        bkey = id(breaker)

        def on_transition(old: str, new: str) -> None:
            runtime.breaker_transition(port.key, name, bkey, old, new)
            publish_transition(port.key, name, old, new)
            _log.warning(
                "circuit breaker state changed",
                port=port.key,
                adapter=name,
                breaker=breaker_name,
                old=old,
                new=new,
            )

        breaker.add_listener(on_transition)
        runtime.breaker_transition(port.key, name, bkey, "none", breaker.state)

    guards: dict[str, Guard] = {}
    stats: dict[str, MethodStats] = {}
    for declared in members_of(port.protocol):
        member, kind = declared.name, declared.kind
        if kind is MemberKind.ATTRIBUTE:
            continue
        # Sync methods of async ports are local accessors (get_context, available_tools,
        # validate_input): they get telemetry but no protection.
        protected = kind is not MemberKind.SYNC or not port.is_async
        if not protected and not (metrics_on or spans_on):
            continue
        fn = getattr(adapter, member)
        st = MethodStats(port.key, name, member, labels)
        stats[member] = st
        is_async = port.is_async and kind is not MemberKind.SYNC
        guarded = prot if protected else None
        guards[member] = Guard(
            fn=fn,
            port=port,
            name=name,
            method=member,
            stats=st,
            layers=admission_layers(
                limiter=limiter if protected else None,
                breaker=breaker if protected else None,
                bulkhead=guarded.bulkhead if guarded is not None else None,
                adapter=name,
                is_async=is_async,
            ),
            timeout=(
                guarded.timeout.seconds
                if guarded is not None and guarded.timeout is not None
                else None
            ),
            retry=guarded.retry if guarded is not None else None,
            fallback_fn=(getattr(fallback, member) if fallback is not None and protected else None),
            tracer=tracer,
            ledger=ledger,
            genai=tel is not None and tel.genai and port.key in GENAI_PORTS,
            is_async=is_async,
        )
    if metrics_on:
        runtime.adopt(stats.values(), ledger)

    cls = _proxy_class(port)
    proxy: Any = object.__new__(cls)
    proxy._pc_target = adapter
    proxy._pc_guards = guards
    proxy.boundary_stats = stats
    proxy.boundary = BoundaryHandle(
        target=adapter,
        port=port,
        name=name,
        adapter_type=adapter_type,
        stats=stats,
        breaker=breaker,
        limiter=limiter,
        ledger=ledger,
        telemetry=tel,
        protection=prot,
    )
    return proxy
