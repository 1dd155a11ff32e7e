"""The proxy the boundary hands out in place of an adapter.

One proxy class is built per (port, configuration) and cached; each wrapped adapter gets one
instance holding one :class:`_Guard` per protocol method. A guard runs, in this order::

    fallback( rate limit -> circuit breaker -> bulkhead -> timeout -> retry -> call )

with metrics around the admitted call and, where configured, a span around everything.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, TypeVar

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from portfolio_core.boundary._introspect import MemberKind, members_of
from portfolio_core.boundary.breaker import Breaker, CircuitOpenError
from portfolio_core.boundary.config import (
    BulkheadConfig,
    ProtectionConfig,
    RetryConfig,
    TelemetryConfig,
)
from portfolio_core.boundary.ratelimit import RateLimiter
from portfolio_core.boundary.stats import BoundedLabels, MethodStats
from portfolio_core.boundary.telemetry import (
    ATTR_ADAPTER,
    ATTR_METHOD,
    ATTR_OUTCOME,
    ATTR_PORT,
    ATTR_TENANT,
    CostLedger,
    Telemetry,
    genai_attributes,
)
from portfolio_core.boundary.timeline import Severity, publish
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.errors import PortError, PortTimeoutError, UnavailableError
from portfolio_core.ports.tenant import current_tenant

__all__ = ["BoundaryHandle", "BulkheadFullError", "build_proxy"]

T = TypeVar("T")
_log = structlog.get_logger("portfolio_core.boundary")

GENAI_PORTS = frozenset({"llm", "router", "agent"})
COST_METHODS = frozenset({"complete", "stream", "run"})

_EXECUTOR: ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(
                max_workers=16, thread_name_prefix="portfolio-core-timeout"
            )
        return _EXECUTOR


class BulkheadFullError(UnavailableError):
    """The bulkhead's concurrent-call limit was reached (and ``max_wait`` passed)."""


def _reason(exc: BaseException) -> str:
    from portfolio_core.boundary.breaker import BreakerStorageError
    from portfolio_core.boundary.ratelimit import RateLimitStorageError

    if isinstance(exc, RateLimitStorageError | BreakerStorageError):
        return "storage"
    if isinstance(exc, CircuitOpenError):
        return "circuit_open"
    if isinstance(exc, BulkheadFullError):
        return "bulkhead"
    return "rate_limit"


def _publish_transition(port: str, name: str, old: str, new: str) -> None:
    if old == new:
        return
    severity: Severity = "error" if new == "open" else "warning" if new == "half-open" else "info"
    publish(
        "breaker",
        f"circuit breaker of {name!r}: {old} -> {new}",
        entry=name,
        severity=severity,
        data={"port": port, "from": old, "to": new},
    )


def _publish_fallback(port: str, name: str, method: str, exc: BaseException) -> None:
    publish(
        "fallback",
        f"{name!r} fell back on {port}.{method}",
        entry=name,
        severity="warning",
        detail=f"after {type(exc).__name__}",
        data={"port": port, "method": method, "error": type(exc).__name__},
        coalesce=("fallback", port, name, method),
    )


def _retry_delay(cfg: RetryConfig, attempt: int, exc: BaseException) -> float:
    delay = min(cfg.max_backoff, cfg.backoff * cfg.multiplier ** (attempt - 1))
    delay *= 1.0 - cfg.jitter * random.random()
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, int | float) and delay < hint <= cfg.max_backoff:
        delay = float(hint)
    return delay


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, PortError) and exc.retryable


class _Guard:
    """Everything that runs around one method of one wrapped adapter."""

    __slots__ = (
        "acall",
        "breaker",
        "bulkhead",
        "bulkhead_sem",
        "call",
        "fallback_fn",
        "fn",
        "genai",
        "inner",
        "ledger",
        "limiter",
        "method",
        "name",
        "port",
        "retry",
        "span_name",
        "stats",
        "timeout",
        "tracer",
    )

    def __init__(
        self,
        *,
        fn: Callable[..., Any],
        port: PortInfo,
        name: str,
        method: str,
        stats: MethodStats,
        limiter: RateLimiter | None,
        breaker: Breaker | None,
        bulkhead: BulkheadConfig | None,
        timeout: float | None,
        retry: RetryConfig | None,
        fallback_fn: Callable[..., Any] | None,
        tracer: trace.Tracer | None,
        ledger: CostLedger | None,
        genai: bool,
        is_async: bool,
    ) -> None:
        self.fn = fn
        self.port = port
        self.name = name
        self.method = method
        self.stats = stats
        self.limiter = limiter
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.bulkhead_sem: Any = None
        if bulkhead is not None:
            self.bulkhead_sem = (
                asyncio.Semaphore(bulkhead.max_concurrent)
                if is_async
                else threading.BoundedSemaphore(bulkhead.max_concurrent)
            )
        self.timeout = timeout
        self.retry = retry
        self.fallback_fn = fallback_fn
        self.tracer = tracer
        self.ledger = ledger
        self.genai = genai
        self.span_name = f"{port.key}.{method}"
        self.inner = timeout is not None or retry is not None
        # Pick the entry points once, so the common case runs one frame per call.
        self.acall: Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[Any]]
        self.call: Callable[[tuple[Any, ...], dict[str, Any]], Any]
        if fallback_fn is not None:
            self.acall, self.call = self._acall_fallback, self._call_fallback
        elif tracer is not None:
            self.acall, self.call = self._acall_traced, self._call_traced
        else:
            self.acall, self.call = self._acall, self._call

    # -- shared pieces ---------------------------------------------------------------------
    def _span_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            ATTR_PORT: self.port.key,
            ATTR_ADAPTER: self.name,
            ATTR_METHOD: self.method,
        }
        ctx = current_tenant()
        if ctx is not None:
            attrs[ATTR_TENANT] = ctx.tenant_id
        return attrs

    def _after_result(
        self, span: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
    ) -> None:
        if self.ledger is not None and self.method in COST_METHODS:
            usage = getattr(result, "usage", None)
            if usage is not None:
                model = getattr(result, "model", None)
                if model is None:
                    opts = kwargs.get("opts", args[1] if len(args) > 1 else None)
                    model = getattr(opts, "model", None)
                self.ledger.record(
                    model,
                    input_tokens=int(usage.input_tokens),
                    output_tokens=int(usage.output_tokens),
                    api_calls=1,
                )
        if span is not None and self.genai:
            span.set_attributes(genai_attributes(self.port.key, self.method, args, kwargs, result))

    def _failed(
        self,
        exc: BaseException,
        seconds: float,
        breaker: Breaker | None,
        probe: bool,
        span: Any,
    ) -> None:
        """Account a call that raised after ``seconds``: an error (counted, and a breaker
        failure) or a cancellation (counted apart, and never a breaker failure)."""
        if isinstance(exc, Exception):
            self.stats.record_error(seconds, exc)
            if breaker is not None:
                breaker.on_failure(exc, probe)
        else:
            self.stats.record_cancelled(seconds)
            if breaker is not None:
                breaker.on_cancel(probe)
        if span is not None:
            self._end_span(span, exc)

    @staticmethod
    def _end_span(span: Any, exc: BaseException | None, rejected: bool = False) -> None:
        if exc is None:
            span.set_attribute(ATTR_OUTCOME, "ok")
            return
        if not isinstance(exc, Exception):
            span.set_attribute(ATTR_OUTCOME, "cancelled")
            return
        span.set_attribute(ATTR_OUTCOME, "rejected" if rejected else "error")
        span.set_attribute("error.type", type(exc).__name__)
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))

    # -- async -----------------------------------------------------------------------------
    async def _acall_fallback(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.fallback_fn is not None:
            try:
                return await self._acall_traced(args, kwargs)
            except Exception as exc:
                if not _is_retryable(exc):
                    raise
                _log.warning(
                    "falling back", port=self.port.key, adapter=self.name, method=self.method
                )
                _publish_fallback(self.port.key, self.name, self.method, exc)
                return await self.fallback_fn(*args, **kwargs)
        return await self._acall_traced(args, kwargs)

    async def _acall_traced(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tracer = self.tracer
        if tracer is None:
            return await self._acall(args, kwargs, None)
        with tracer.start_as_current_span(
            self.span_name,
            kind=SpanKind.CLIENT,
            attributes=self._span_attributes(),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            return await self._acall(args, kwargs, span)

    async def _acall(self, args: tuple[Any, ...], kwargs: dict[str, Any], span: Any = None) -> Any:
        stats = self.stats
        breaker = self.breaker
        probe = False
        try:
            if self.limiter is not None:
                await self.limiter.aacquire()
            if breaker is not None:
                probe = breaker.admit()
            if self.bulkhead_sem is not None:
                await self._aenter_bulkhead(breaker, probe)
        except PortError as exc:
            stats.record_rejected(_reason(exc))
            if span is not None:
                self._end_span(span, exc, rejected=True)
            raise
        t0 = time.perf_counter()
        try:
            if self.inner:
                result = await self._ainner(args, kwargs)
            else:
                result = await self.fn(*args, **kwargs)
        except BaseException as exc:
            self._failed(exc, time.perf_counter() - t0, breaker, probe, span)
            raise
        finally:
            if self.bulkhead_sem is not None:
                self.bulkhead_sem.release()
        stats.record(time.perf_counter() - t0)
        if breaker is not None:
            breaker.on_success(probe)
        if span is not None or self.ledger is not None:
            self._after_result(span, args, kwargs, result)
            if span is not None:
                self._end_span(span, None)
        return result

    async def _aenter_bulkhead(self, breaker: Breaker | None, probe: bool) -> None:
        sem: asyncio.Semaphore = self.bulkhead_sem
        assert self.bulkhead is not None
        try:
            if sem.locked():
                if self.bulkhead.max_wait <= 0:
                    raise BulkheadFullError(
                        f"bulkhead of {self.name!r} is full "
                        f"({self.bulkhead.max_concurrent} concurrent calls)"
                    )
                try:
                    async with asyncio.timeout(self.bulkhead.max_wait):
                        await sem.acquire()
                except TimeoutError:
                    raise BulkheadFullError(
                        f"bulkhead of {self.name!r} stayed full for {self.bulkhead.max_wait}s"
                    ) from None
            else:
                await sem.acquire()
        except BaseException:
            if breaker is not None:
                breaker.on_cancel(probe)
            raise

    async def _ainner(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.timeout is None:
            return await self._aretry(args, kwargs)
        try:
            async with asyncio.timeout(self.timeout) as cm:
                return await self._aretry(args, kwargs)
        except TimeoutError as exc:
            if cm.expired():
                raise PortTimeoutError(
                    f"{self.port.name}.{self.method} of {self.name!r} timed out "
                    f"after {self.timeout}s",
                    timeout=self.timeout,
                    port=self.port.name,
                ) from exc
            raise

    async def _aretry(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cfg = self.retry
        if cfg is None:
            return await self.fn(*args, **kwargs)
        attempt = 1
        while True:
            try:
                return await self.fn(*args, **kwargs)
            except Exception as exc:
                if attempt >= cfg.attempts or not _is_retryable(exc):
                    raise
                await asyncio.sleep(_retry_delay(cfg, attempt, exc))
                attempt += 1

    # -- async iterators ------------------------------------------------------------------
    async def aiter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Admission (rate limit, breaker, bulkhead) when iteration starts; the outcome is
        known when it ends. Timeout and retry do not apply to iterators. Closing the iterator
        early counts as success. Falls back only when it fails before the first item."""
        stats = self.stats
        breaker = self.breaker
        probe = False
        started = False
        # The span is started but not made current: an async generator's frames run in its
        # consumer's context between items, so attaching a context here would leak into it.
        span = (
            self.tracer.start_span(
                self.span_name,
                kind=SpanKind.CLIENT,
                attributes=self._span_attributes(),
                record_exception=False,
                set_status_on_exception=False,
            )
            if self.tracer is not None
            else None
        )
        try:
            try:
                if self.limiter is not None:
                    await self.limiter.aacquire()
                if breaker is not None:
                    probe = breaker.admit()
                if self.bulkhead_sem is not None:
                    await self._aenter_bulkhead(breaker, probe)
            except PortError as exc:
                stats.record_rejected(_reason(exc))
                if span is not None:
                    self._end_span(span, exc, rejected=True)
                if self.fallback_fn is not None and _is_retryable(exc):
                    _publish_fallback(self.port.key, self.name, self.method, exc)
                    async for item in self.fallback_fn(*args, **kwargs):
                        yield item
                    return
                raise
            t0 = time.perf_counter()
            last: Any = None
            try:
                iterator = self.fn(*args, **kwargs)
                async for item in iterator:
                    started = True
                    last = item
                    yield item
            except GeneratorExit:
                stats.record(time.perf_counter() - t0)
                if breaker is not None:
                    breaker.on_success(probe)
                raise
            except BaseException as exc:
                self._failed(exc, time.perf_counter() - t0, breaker, probe, span)
                if (
                    not started
                    and self.fallback_fn is not None
                    and isinstance(exc, Exception)
                    and _is_retryable(exc)
                ):
                    _publish_fallback(self.port.key, self.name, self.method, exc)
                    async for item in self.fallback_fn(*args, **kwargs):
                        yield item
                    return
                raise
            finally:
                if self.bulkhead_sem is not None:
                    self.bulkhead_sem.release()
            stats.record(time.perf_counter() - t0)
            if breaker is not None:
                breaker.on_success(probe)
            if last is not None and (span is not None or self.ledger is not None):
                self._after_result(span, args, kwargs, last)
            if span is not None:
                self._end_span(span, None)
        finally:
            if span is not None:
                span.end()

    # -- sync ------------------------------------------------------------------------------
    def _call_fallback(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.fallback_fn is not None:
            try:
                return self._call_traced(args, kwargs)
            except Exception as exc:
                if not _is_retryable(exc):
                    raise
                _log.warning(
                    "falling back", port=self.port.key, adapter=self.name, method=self.method
                )
                _publish_fallback(self.port.key, self.name, self.method, exc)
                return self.fallback_fn(*args, **kwargs)
        return self._call_traced(args, kwargs)

    def _call_traced(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tracer = self.tracer
        if tracer is None:
            return self._call(args, kwargs, None)
        with tracer.start_as_current_span(
            self.span_name,
            kind=SpanKind.CLIENT,
            attributes=self._span_attributes(),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            return self._call(args, kwargs, span)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any], span: Any = None) -> Any:
        stats = self.stats
        breaker = self.breaker
        probe = False
        sem = self.bulkhead_sem
        try:
            if self.limiter is not None:
                self.limiter.acquire()
            if breaker is not None:
                probe = breaker.admit()
            if sem is not None:
                assert self.bulkhead is not None
                wait = self.bulkhead.max_wait
                ok = sem.acquire(timeout=wait) if wait > 0 else sem.acquire(blocking=False)
                if not ok:
                    if breaker is not None:
                        breaker.on_cancel(probe)
                    raise BulkheadFullError(
                        f"bulkhead of {self.name!r} is full "
                        f"({self.bulkhead.max_concurrent} concurrent calls)"
                    )
        except PortError as exc:
            stats.record_rejected(_reason(exc))
            if span is not None:
                self._end_span(span, exc, rejected=True)
            raise
        t0 = time.perf_counter()
        try:
            result = self._inner(args, kwargs) if self.inner else self.fn(*args, **kwargs)
        except BaseException as exc:
            self._failed(exc, time.perf_counter() - t0, breaker, probe, span)
            raise
        finally:
            if sem is not None:
                sem.release()
        stats.record(time.perf_counter() - t0)
        if breaker is not None:
            breaker.on_success(probe)
        if span is not None or self.ledger is not None:
            self._after_result(span, args, kwargs, result)
            if span is not None:
                self._end_span(span, None)
        return result

    def _inner(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.timeout is None:
            return self._retry(args, kwargs)
        ctx = contextvars.copy_context()
        future = _executor().submit(ctx.run, self._retry, args, kwargs)
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeoutError as exc:
            future.cancel()
            raise PortTimeoutError(
                f"{self.port.name}.{self.method} of {self.name!r} timed out after "
                f"{self.timeout}s (the call may still be running in its worker thread)",
                timeout=self.timeout,
                port=self.port.name,
            ) from exc

    def _retry(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cfg = self.retry
        if cfg is None:
            return self.fn(*args, **kwargs)
        attempt = 1
        while True:
            try:
                return self.fn(*args, **kwargs)
            except Exception as exc:
                if attempt >= cfg.attempts or not _is_retryable(exc):
                    raise
                time.sleep(_retry_delay(cfg, attempt, exc))
                attempt += 1


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


_CLASSES: dict[tuple[str, str], type] = {}
_CLASSES_LOCK = threading.Lock()


def _proxy_class(port: PortInfo, config_key: str) -> type:
    key = (port.key, config_key)
    cls = _CLASSES.get(key)
    if cls is not None:
        return cls
    namespace: dict[str, Any] = {}
    for name, kind in members_of(port.protocol):
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
    """Build the proxy instance (see :func:`portfolio_core.boundary.wrap`)."""
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
            _publish_transition(port.key, name, old, new)
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

    guards: dict[str, _Guard] = {}
    stats: dict[str, MethodStats] = {}
    for member, kind in members_of(port.protocol):
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
        guards[member] = _Guard(
            fn=fn,
            port=port,
            name=name,
            method=member,
            stats=st,
            limiter=limiter if protected else None,
            breaker=breaker if protected else None,
            bulkhead=prot.bulkhead if (prot is not None and protected) else None,
            timeout=(
                prot.timeout.seconds
                if prot is not None and prot.timeout is not None and protected
                else None
            ),
            retry=prot.retry if (prot is not None and protected) else None,
            fallback_fn=(getattr(fallback, member) if fallback is not None and protected else None),
            tracer=tracer,
            ledger=ledger,
            genai=tel is not None and tel.genai and port.key in GENAI_PORTS,
            is_async=port.is_async and kind is not MemberKind.SYNC,
        )
    if metrics_on:
        runtime.adopt(stats.values(), ledger)

    config_key = "|".join(
        (
            tel.model_dump_json() if tel is not None else "-",
            prot.model_dump_json() if prot is not None else "-",
        )
    )
    cls = _proxy_class(port, config_key)
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
