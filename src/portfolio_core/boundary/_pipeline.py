"""The guard pipeline: what runs around one method of a wrapped adapter.

The pipeline is described once, as data. `LAYERS` names the protection layers in the
order they run::

    fallback( rate limit -> circuit breaker -> bulkhead -> timeout -> retry -> call )

`admission_layers` turns a configuration into `Layer` records, one per
configured admission layer (rate limit, breaker, bulkhead), each saying what the layer does
before the call (admit it, or refuse it with a port error), when the call succeeds, when it
fails or is cancelled, when a later layer refuses the call, and when the call ends either
way. Timeout and retry admit nothing: they wrap the call itself (`wrap_call`,
`awrap_call`). Fallback wraps everything.

A `Guard` runs those layers for one method with one of three thin runners — sync,
async and async iterator — that differ only in how they wait; the accounting (metrics,
breaker outcome, span, cost) is shared. Metrics are taken around the admitted call and, where
configured, a span covers admission and call.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from portfolio_core.boundary.breaker import (
    Breaker,
    BreakerStorageError,
    CircuitOpenError,
)
from portfolio_core.boundary.config import BulkheadConfig, RetryConfig
from portfolio_core.boundary.ratelimit import RateLimiter, RateLimitStorageError
from portfolio_core.boundary.retry import is_retryable, retry_delay
from portfolio_core.boundary.stats import MethodStats
from portfolio_core.boundary.telemetry import (
    ATTR_ADAPTER,
    ATTR_METHOD,
    ATTR_OUTCOME,
    ATTR_PORT,
    ATTR_TENANT,
    CostLedger,
    genai_attributes,
)
from portfolio_core.boundary.timeline import publish_fallback
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.errors import PortError, PortTimeoutError, UnavailableError
from portfolio_core.ports.tenant import current_tenant

__all__ = [
    "LAYERS",
    "BulkheadFullError",
    "Guard",
    "Layer",
    "admission_layers",
    "awrap_call",
    "wrap_call",
]

#: The protection layers, outermost first. Fallback wraps the others; the first three admit
#: or refuse a call; timeout and retry wrap the call itself.
LAYERS = ("fallback", "rate_limit", "circuit_breaker", "bulkhead", "timeout", "retry")

COST_METHODS = frozenset({"complete", "stream", "run"})

_log = structlog.get_logger("portfolio_core.boundary")


class BulkheadFullError(UnavailableError):
    """The bulkhead's concurrent-call limit was reached (and ``max_wait`` passed)."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RateLimitStorageError | BreakerStorageError):
        return "storage"
    if isinstance(exc, CircuitOpenError):
        return "circuit_open"
    if isinstance(exc, BulkheadFullError):
        return "bulkhead"
    return "rate_limit"


# -- the layers, as data -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layer:
    """One admission layer: its hooks around a call.

    ``admit`` runs before the call (``aadmit`` instead on async methods when given); it
    returns the call's token (the breaker's probe flag; ``None`` for the others) or raises a
    [PortError][portfolio_core.boundary._pipeline.PortError] to refuse the call. The other hooks
    receive that token.
    """

    name: str
    admit: Callable[[], Any]
    aadmit: Callable[[], Awaitable[Any]] | None = None
    succeeded: Callable[[Any], None] | None = None
    """The call returned."""
    failed: Callable[[Any, BaseException], None] | None = None
    """The call raised: an ``Exception`` (a failure) or a cancellation."""
    abandoned: Callable[[Any], None] | None = None
    """A later layer refused the call (or admission was cancelled) after this one admitted it."""
    release: Callable[[Any], None] | None = None
    """The admitted call ended, whatever its outcome."""


def _rate_limit_layer(limiter: RateLimiter) -> Layer:
    return Layer("rate_limit", admit=limiter.acquire, aadmit=limiter.aacquire)


def _breaker_layer(breaker: Breaker) -> Layer:
    def failed(probe: bool, exc: BaseException) -> None:
        if isinstance(exc, Exception):
            breaker.on_failure(exc, probe)
        else:
            breaker.on_cancel(probe)

    return Layer(
        "circuit_breaker",
        admit=breaker.admit,
        succeeded=breaker.on_success,
        failed=failed,
        abandoned=breaker.on_cancel,
    )


def _bulkhead_layer(cfg: BulkheadConfig, adapter: str, is_async: bool) -> Layer:
    full = f"bulkhead of {adapter!r} is full ({cfg.max_concurrent} concurrent calls)"
    wait = cfg.max_wait
    if not is_async:
        sem = threading.BoundedSemaphore(cfg.max_concurrent)

        def admit() -> None:
            if not (sem.acquire(timeout=wait) if wait > 0 else sem.acquire(blocking=False)):
                raise BulkheadFullError(full)

        return Layer("bulkhead", admit=admit, release=lambda _token: sem.release())

    asem = asyncio.Semaphore(cfg.max_concurrent)

    async def aadmit() -> None:
        if not asem.locked():
            await asem.acquire()
            return
        if wait <= 0:
            raise BulkheadFullError(full)
        try:
            async with asyncio.timeout(wait):
                await asem.acquire()
        except TimeoutError:
            raise BulkheadFullError(f"bulkhead of {adapter!r} stayed full for {wait}s") from None

    def no_sync_admit() -> None:  # pragma: no cover - async guards only call aadmit
        raise RuntimeError("an async bulkhead is entered with aadmit")

    return Layer("bulkhead", admit=no_sync_admit, aadmit=aadmit, release=lambda _t: asem.release())


def admission_layers(
    *,
    limiter: RateLimiter | None,
    breaker: Breaker | None,
    bulkhead: BulkheadConfig | None,
    adapter: str,
    is_async: bool,
) -> tuple[Layer, ...]:
    """The configured admission layers of one method, in `LAYERS` order."""
    layers: list[Layer] = []
    if limiter is not None:
        layers.append(_rate_limit_layer(limiter))
    if breaker is not None:
        layers.append(_breaker_layer(breaker))
    if bulkhead is not None:
        layers.append(_bulkhead_layer(bulkhead, adapter, is_async))
    return tuple(layers)


# -- timeout and retry wrap the call ------------------------------------------------------------

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


def _timed_out(what: str, seconds: float, port: str, note: str = "") -> PortTimeoutError:
    return PortTimeoutError(f"{what} timed out after {seconds}s{note}", timeout=seconds, port=port)


def wrap_call(
    fn: Callable[..., Any],
    *,
    timeout: float | None,
    retry: RetryConfig | None,
    what: str,
    port: str,
) -> Callable[..., Any]:
    """``fn`` with retry inside and the timeout around it (sync: the timeout runs the call
    in a worker thread, which may go on running after the deadline)."""
    call = fn
    if retry is not None:
        cfg, once = retry, call

        def call(*args: Any, **kwargs: Any) -> Any:
            attempt = 1
            while True:
                try:
                    return once(*args, **kwargs)
                except Exception as exc:
                    if attempt >= cfg.attempts or not is_retryable(exc):
                        raise
                    time.sleep(retry_delay(cfg, attempt, exc))
                    attempt += 1

    if timeout is not None:
        seconds, inner = timeout, call

        def call(*args: Any, **kwargs: Any) -> Any:
            ctx = contextvars.copy_context()
            future = _executor().submit(ctx.run, inner, *args, **kwargs)
            try:
                return future.result(timeout=seconds)
            except FutureTimeoutError as exc:
                future.cancel()
                raise _timed_out(
                    what, seconds, port, " (the call may still be running in its worker thread)"
                ) from exc

    return call


def awrap_call(
    fn: Callable[..., Awaitable[Any]],
    *,
    timeout: float | None,
    retry: RetryConfig | None,
    what: str,
    port: str,
) -> Callable[..., Awaitable[Any]]:
    """The async form of `wrap_call` (the timeout cancels the call)."""
    call = fn
    if retry is not None:
        cfg, once = retry, call

        async def call(*args: Any, **kwargs: Any) -> Any:
            attempt = 1
            while True:
                try:
                    return await once(*args, **kwargs)
                except Exception as exc:
                    if attempt >= cfg.attempts or not is_retryable(exc):
                        raise
                    await asyncio.sleep(retry_delay(cfg, attempt, exc))
                    attempt += 1

    if timeout is not None:
        seconds, inner = timeout, call

        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                async with asyncio.timeout(seconds) as cm:
                    return await inner(*args, **kwargs)
            except TimeoutError as exc:
                if cm.expired():
                    raise _timed_out(what, seconds, port) from exc
                raise

    return call


# -- the guard: one method's pipeline and its runners -------------------------------------------


def _indexed(layers: tuple[Layer, ...], hook: str) -> tuple[tuple[int, Callable[..., None]], ...]:
    return tuple(
        (i, fn) for i, layer in enumerate(layers) if (fn := getattr(layer, hook)) is not None
    )


class Guard:
    """Everything that runs around one method of one wrapped adapter.

    ``call`` (sync methods), ``acall`` (coroutines) and ``aiter`` (async iterators) take
    the call's ``(args, kwargs)``.
    """

    __slots__ = (
        "acall",
        "admit_async",
        "admits",
        "call",
        "fallback_fn",
        "fn",
        "genai",
        "invoke",
        "layers",
        "ledger",
        "method",
        "name",
        "on_abandon",
        "on_failure",
        "on_release",
        "on_success",
        "port",
        "size",
        "span_name",
        "stats",
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
        layers: tuple[Layer, ...],
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
        self.layers = layers
        self.size = len(layers)
        self.admits = tuple(layer.admit for layer in layers)
        self.admit_async = tuple((layer.admit, layer.aadmit) for layer in layers)
        self.on_success = _indexed(layers, "succeeded")
        self.on_failure = _indexed(layers, "failed")
        self.on_abandon = _indexed(layers, "abandoned")
        self.on_release = _indexed(layers, "release")
        what = f"{port.name}.{method} of {name!r}"
        wrap = awrap_call if is_async else wrap_call
        self.invoke = wrap(fn, timeout=timeout, retry=retry, what=what, port=port.name)
        self.fallback_fn = fallback_fn
        self.tracer = tracer
        self.ledger = ledger
        self.genai = genai
        self.span_name = f"{port.key}.{method}"
        # Pick the entry points once, so the common case runs one frame per call.
        self.acall: Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[Any]]
        self.call: Callable[[tuple[Any, ...], dict[str, Any]], Any]
        if fallback_fn is not None:
            self.acall, self.call = self._acall_fallback, self._call_fallback
        elif tracer is not None:
            self.acall, self.call = self._acall_traced, self._call_traced
        else:
            self.acall, self.call = self._arun, self._run

    # -- accounting shared by every runner ----------------------------------------------------
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

    def _start_span(self) -> Any:
        assert self.tracer is not None  # noqa: S101  (spans are on)
        return self.tracer.start_as_current_span(
            self.span_name,
            kind=SpanKind.CLIENT,
            attributes=self._span_attributes(),
            record_exception=False,
            set_status_on_exception=False,
        )

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

    def _refused(self, exc: BaseException, tokens: list[Any], span: Any) -> None:
        """Admission stopped at layer ``len(tokens)``: undo the layers that admitted."""
        for i, abandon in reversed(self.on_abandon):
            if i < len(tokens):
                abandon(tokens[i])
        if isinstance(exc, PortError):
            self.stats.record_rejected(_reason(exc))
            if span is not None:
                self._end_span(span, exc, rejected=True)

    def _released(self, tokens: list[Any]) -> None:
        for i, release in self.on_release:
            release(tokens[i])

    def _failed(self, exc: BaseException, seconds: float, tokens: list[Any], span: Any) -> None:
        """Account a call that raised after ``seconds``: an error (counted, and a breaker
        failure) or a cancellation (counted apart, and never a breaker failure)."""
        if isinstance(exc, Exception):
            self.stats.record_error(seconds, exc)
        else:
            self.stats.record_cancelled(seconds)
        for i, failed in self.on_failure:
            failed(tokens[i], exc)
        if span is not None:
            self._end_span(span, exc)

    def _succeeded(self, seconds: float, tokens: list[Any]) -> None:
        self.stats.record(seconds)
        for i, succeeded in self.on_success:
            succeeded(tokens[i])

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

    def _falls_back(self, exc: Exception) -> bool:
        if not is_retryable(exc):
            return False
        _log.warning("falling back", port=self.port.key, adapter=self.name, method=self.method)
        publish_fallback(self.port.key, self.name, self.method, exc)
        return True

    # -- the sync runner ----------------------------------------------------------------------
    def _call_fallback(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self.fallback_fn is not None  # noqa: S101  (only with a fallback)
        try:
            return self._call_traced(args, kwargs)
        except Exception as exc:
            if not self._falls_back(exc):
                raise
        return self.fallback_fn(*args, **kwargs)

    def _call_traced(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.tracer is None:
            return self._run(args, kwargs)
        with self._start_span() as span:
            return self._run(args, kwargs, span)

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any], span: Any = None) -> Any:
        tokens: list[Any] = [None] * self.size
        if self.size:
            i = 0
            try:
                for admit in self.admits:
                    tokens[i] = admit()
                    i += 1
            except BaseException as exc:
                self._refused(exc, tokens[:i], span)
                raise
        t0 = time.perf_counter()
        try:
            result = self.invoke(*args, **kwargs)
        except BaseException as exc:
            self._failed(exc, time.perf_counter() - t0, tokens, span)
            raise
        finally:
            if self.on_release:
                self._released(tokens)
        self.stats.record(time.perf_counter() - t0)
        for i, succeeded in self.on_success:
            succeeded(tokens[i])
        if span is not None or self.ledger is not None:
            self._after_result(span, args, kwargs, result)
            if span is not None:
                self._end_span(span, None)
        return result

    # -- the async runner ---------------------------------------------------------------------
    async def _acall_fallback(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self.fallback_fn is not None  # noqa: S101  (only with a fallback)
        try:
            return await self._acall_traced(args, kwargs)
        except Exception as exc:
            if not self._falls_back(exc):
                raise
        return await self.fallback_fn(*args, **kwargs)

    async def _acall_traced(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.tracer is None:
            return await self._arun(args, kwargs)
        with self._start_span() as span:
            return await self._arun(args, kwargs, span)

    async def _aadmit(self, span: Any) -> list[Any]:
        tokens: list[Any] = []
        try:
            for admit, aadmit in self.admit_async:
                tokens.append(admit() if aadmit is None else await aadmit())
        except BaseException as exc:
            self._refused(exc, tokens, span)
            raise
        return tokens

    async def _arun(self, args: tuple[Any, ...], kwargs: dict[str, Any], span: Any = None) -> Any:
        tokens: list[Any] = [None] * self.size
        if self.size:
            i = 0
            try:
                for admit, aadmit in self.admit_async:
                    tokens[i] = admit() if aadmit is None else await aadmit()
                    i += 1
            except BaseException as exc:
                self._refused(exc, tokens[:i], span)
                raise
        t0 = time.perf_counter()
        try:
            result = await self.invoke(*args, **kwargs)
        except BaseException as exc:
            self._failed(exc, time.perf_counter() - t0, tokens, span)
            raise
        finally:
            if self.on_release:
                self._released(tokens)
        self.stats.record(time.perf_counter() - t0)
        for i, succeeded in self.on_success:
            succeeded(tokens[i])
        if span is not None or self.ledger is not None:
            self._after_result(span, args, kwargs, result)
            if span is not None:
                self._end_span(span, None)
        return result

    # -- the async-iterator runner ------------------------------------------------------------
    async def aiter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Admission when iteration starts; the outcome is known when it ends. Timeout and
        retry do not apply to iterators. Closing the iterator early counts as success. Falls
        back only when it fails before the first item."""
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
                tokens = await self._aadmit(span) if self.layers else []
            except PortError as exc:
                if self.fallback_fn is not None and is_retryable(exc):
                    publish_fallback(self.port.key, self.name, self.method, exc)
                    async for item in self.fallback_fn(*args, **kwargs):
                        yield item
                    return
                raise
            t0 = time.perf_counter()
            last: Any = None
            try:
                async for item in self.fn(*args, **kwargs):
                    started = True
                    last = item
                    yield item
            except GeneratorExit:
                self._succeeded(time.perf_counter() - t0, tokens)
                raise
            except BaseException as exc:
                self._failed(exc, time.perf_counter() - t0, tokens, span)
                if (
                    not started
                    and self.fallback_fn is not None
                    and isinstance(exc, Exception)
                    and is_retryable(exc)
                ):
                    publish_fallback(self.port.key, self.name, self.method, exc)
                    async for item in self.fallback_fn(*args, **kwargs):
                        yield item
                    return
                raise
            finally:
                if self.on_release:
                    self._released(tokens)
            self._succeeded(time.perf_counter() - t0, tokens)
            if last is not None and (span is not None or self.ledger is not None):
                self._after_result(span, args, kwargs, last)
            if span is not None:
                self._end_span(span, None)
        finally:
            if span is not None:
                span.end()
