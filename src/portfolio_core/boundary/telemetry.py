"""Spans, metrics and cost events at the boundary (OpenTelemetry API only).

The SDK and exporters are optional (the ``otel`` extra) and imported only by
`portfolio_core.boundary.exporters`. Without an SDK the OpenTelemetry API is a no-op.

Metrics are not recorded through OpenTelemetry on each call: the boundary aggregates them in
process (`portfolio_core.boundary.stats`) and a `Telemetry` exports them through
*observable* instruments, read when a reader collects. Names (attributes on every point:
``port``, ``adapter``, ``method``):

* ``portfolio_core.calls`` (counter, attribute ``outcome``: ok/error/rejected/cancelled),
* ``portfolio_core.errors`` (counter, attribute ``error.type``, bounded),
* ``portfolio_core.rejections`` (counter, attribute ``reason``),
* ``portfolio_core.duration.sum`` / ``.count`` / ``.bucket`` (seconds; ``le`` on buckets),
* ``portfolio_core.duration.quantile`` (gauge, attribute ``quantile``: 0.5/0.95/0.99),
* ``portfolio_core.cost.tokens`` (``direction``: input/output, ``model``),
  ``portfolio_core.cost.api_calls``, ``portfolio_core.cost.embeddings``,
  ``portfolio_core.cost.amount`` (priced by the configured table),
* ``portfolio_core.breaker.transitions`` (``from``, ``to``), ``portfolio_core.breaker.state``
  (gauge: 0 closed, 1 half-open, 2 open),
* ``portfolio_core.health.checks`` (``outcome``), ``portfolio_core.health.changes``,
  ``portfolio_core.health.status`` (gauge: 1 healthy, 0 unhealthy).

Every label drawn from data (error types, model names) goes through a
`BoundedLabels` guard; tenant ids go on spans only.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from portfolio_core._observables import observe
from portfolio_core.boundary.config import CostConfig, ModelPrice
from portfolio_core.boundary.stats import DURATION_BUCKETS, BoundedLabels, MethodStats, all_stats

__all__ = [
    "ATTR_ADAPTER",
    "ATTR_METHOD",
    "ATTR_OUTCOME",
    "ATTR_PORT",
    "ATTR_TENANT",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_SYSTEM",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "CostLedger",
    "Telemetry",
    "default_telemetry",
]

INSTRUMENTATION = "portfolio_core.boundary"

# Span attributes of our own.
ATTR_PORT = "portfolio_core.port"
ATTR_ADAPTER = "portfolio_core.adapter"
ATTR_METHOD = "portfolio_core.method"
ATTR_OUTCOME = "portfolio_core.outcome"
ATTR_TENANT = "portfolio_core.tenant"

# OpenTelemetry GenAI semantic conventions (strings defined here on purpose: the semconv
# package is not a dependency and these names are stable in the spec).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"


@dataclass
class _ModelCost:
    input_tokens: int = 0
    output_tokens: int = 0
    api_calls: int = 0
    embeddings: int = 0
    amount: float = 0.0


@dataclass(eq=False)
class CostLedger:
    """Cost events of one wrapped adapter, aggregated per (bounded) model name."""

    port: str
    adapter: str
    config: CostConfig
    labels: BoundedLabels
    by_model: dict[str, _ModelCost] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _LEDGERS.add(self)

    def _price(self, model: str) -> ModelPrice | None:
        prices = self.config.prices
        return prices.get(model) or prices.get("*")

    def record(
        self,
        model: str | None,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        api_calls: int = 0,
        embeddings: int = 0,
    ) -> None:
        """Record one cost event (tokens, API calls, embeddings) and price it."""
        name = model or "unknown"
        entry = self.by_model.get(self.labels(name))
        if entry is None:
            entry = self.by_model.setdefault(self.labels(name), _ModelCost())
        entry.input_tokens += input_tokens
        entry.output_tokens += output_tokens
        entry.api_calls += api_calls
        entry.embeddings += embeddings
        price = self._price(name)
        if price is not None:
            entry.amount += (
                input_tokens * price.input_per_mtok / 1e6
                + output_tokens * price.output_per_mtok / 1e6
                + api_calls * price.per_call
                + embeddings * price.per_embedding
            )

    @property
    def total_amount(self) -> float:
        return sum(c.amount for c in self.by_model.values())


_LEDGERS: weakref.WeakSet[CostLedger] = weakref.WeakSet()


@dataclass
class _BreakerRecord:
    port: str
    adapter: str
    state: str = "closed"
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class _HealthRecord:
    checks: dict[tuple[str, str, str], int] = field(default_factory=dict)
    changes: dict[tuple[str, str, str], int] = field(default_factory=dict)
    status: dict[tuple[str, str], int] = field(default_factory=dict)


_STATE_VALUE = {"closed": 0, "half-open": 1, "open": 2}


class Telemetry:
    """Where the boundary sends spans and metrics.

    ``tracer_provider`` / ``meter_provider`` default to OpenTelemetry's global providers (set
    them once with the SDK, or use `portfolio_core.boundary.exporters`). Tests pass their
    own providers (with ``InMemorySpanExporter`` / ``InMemoryMetricReader``).
    Observable instruments are registered once per ``Telemetry`` and read every wrapped
    adapter's stats at collection time.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer: trace.Tracer | None = None
        self._instruments = False
        self._lock = threading.Lock()
        self.breakers: dict[int, _BreakerRecord] = {}
        self.health = _HealthRecord()

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            provider = self._tracer_provider or trace.get_tracer_provider()
            self._tracer = provider.get_tracer(INSTRUMENTATION)
        return self._tracer

    def shutdown(self) -> None:
        """Flush and stop the SDK providers this Telemetry was given (readers, exporters,
        their threads). Idempotent; the global providers are left alone."""
        for provider in (self._tracer_provider, self._meter_provider):
            stop = getattr(provider, "shutdown", None)
            if callable(stop):
                with contextlib.suppress(Exception):  # already shut down
                    stop()

    # -- events pushed by breakers and the health aggregator ------------------------------
    def breaker_transition(self, port: str, adapter: str, key: int, old: str, new: str) -> None:
        rec = self.breakers.get(key)
        if rec is None:
            rec = self.breakers[key] = _BreakerRecord(port, adapter)
        rec.state = new
        rec.transitions[(old, new)] = rec.transitions.get((old, new), 0) + 1

    def health_checked(self, name: str, port: str, healthy: bool, changed: bool) -> None:
        outcome = "healthy" if healthy else "unhealthy"
        k = (name, port, outcome)
        self.health.checks[k] = self.health.checks.get(k, 0) + 1
        if changed:
            self.health.changes[k] = self.health.changes.get(k, 0) + 1
        self.health.status[(name, port)] = 1 if healthy else 0

    # -- observable instruments ------------------------------------------------------------
    def ensure_instruments(self) -> None:
        """Register the observable instruments (idempotent)."""
        with self._lock:
            if self._instruments:
                return
            provider = self._meter_provider or metrics.get_meter_provider()

            # shared with other Telemetry instances: the SDK keeps one instrument per name
            def c(name: str, callback: Any, unit: str, description: str = "") -> None:
                observe(
                    provider,
                    INSTRUMENTATION,
                    "counter",
                    name,
                    callback,
                    unit=unit,
                    description=description,
                )

            def g(name: str, callback: Any, unit: str) -> None:
                observe(provider, INSTRUMENTATION, "gauge", name, callback, unit=unit)

            c("portfolio_core.calls", self._calls, unit="{call}", description="calls")
            c("portfolio_core.errors", self._errors, unit="{error}", description="errors")
            c("portfolio_core.rejections", self._rejections, unit="{call}")
            c("portfolio_core.duration.sum", self._dsum, unit="s")
            c("portfolio_core.duration.count", self._dcount, unit="{call}")
            c("portfolio_core.duration.bucket", self._dbucket, unit="{call}")
            g("portfolio_core.duration.quantile", self._dquantile, unit="s")
            c("portfolio_core.cost.tokens", self._cost_tokens, unit="{token}")
            c("portfolio_core.cost.api_calls", self._cost_calls, unit="{call}")
            c("portfolio_core.cost.embeddings", self._cost_embeddings, unit="{embedding}")
            c("portfolio_core.cost.amount", self._cost_amount, unit="1")
            c("portfolio_core.breaker.transitions", self._br_transitions, unit="{transition}")
            g("portfolio_core.breaker.state", self._br_state, unit="1")
            c("portfolio_core.health.checks", self._h_checks, unit="{check}")
            c("portfolio_core.health.changes", self._h_changes, unit="{change}")
            g("portfolio_core.health.status", self._h_status, unit="1")
            self._instruments = True

    @staticmethod
    def _base(s: MethodStats) -> dict[str, str]:
        return {"port": s.port, "adapter": s.adapter, "method": s.method}

    def _stats(self) -> Iterable[MethodStats]:
        return [s for s in all_stats() if _OWNER.get(s) is self]

    def _calls(self, _o: CallbackOptions) -> Iterable[Observation]:
        for s in self._stats():
            base = self._base(s)
            ok = s.calls - s.errors - s.cancelled
            yield Observation(ok, {**base, "outcome": "ok"})
            yield Observation(s.errors, {**base, "outcome": "error"})
            yield Observation(s.cancelled, {**base, "outcome": "cancelled"})
            yield Observation(s.rejected, {**base, "outcome": "rejected"})

    def _errors(self, _o: CallbackOptions) -> Iterable[Observation]:
        for s in self._stats():
            base = self._base(s)
            for name, n in list(s.errors_by_type.items()):
                yield Observation(n, {**base, "error.type": name})

    def _rejections(self, _o: CallbackOptions) -> Iterable[Observation]:
        for s in self._stats():
            base = self._base(s)
            for reason, n in list(s.rejected_by_reason.items()):
                yield Observation(n, {**base, "reason": reason})

    def _dsum(self, _o: CallbackOptions) -> Iterable[Observation]:
        for s in self._stats():
            yield Observation(s.duration_sum, self._base(s))

    def _dcount(self, _o: CallbackOptions) -> Iterable[Observation]:
        for s in self._stats():
            yield Observation(s.calls, self._base(s))

    def _dbucket(self, _o: CallbackOptions) -> Iterable[Observation]:
        for s in self._stats():
            base = self._base(s)
            running = 0
            for bound, n in zip((*DURATION_BUCKETS, float("inf")), s.buckets, strict=True):
                running += n
                yield Observation(running, {**base, "le": str(bound)})

    def _dquantile(self, _o: CallbackOptions) -> Iterable[Observation]:
        from portfolio_core.boundary.stats import PerformanceMonitor

        for perf in PerformanceMonitor(list(self._stats())).report():
            base = {"port": perf.port, "adapter": perf.adapter, "method": perf.method}
            for q, v in (("0.5", perf.p50), ("0.95", perf.p95), ("0.99", perf.p99)):
                yield Observation(v, {**base, "quantile": q})

    def _ledgers(self) -> list[CostLedger]:
        return [led for led in list(_LEDGERS) if _LEDGER_OWNER.get(led) is self]

    def _cost_tokens(self, _o: CallbackOptions) -> Iterable[Observation]:
        for led in self._ledgers():
            for model, c in list(led.by_model.items()):
                base = {"port": led.port, "adapter": led.adapter, "model": model}
                yield Observation(c.input_tokens, {**base, "direction": "input"})
                yield Observation(c.output_tokens, {**base, "direction": "output"})

    def _cost_calls(self, _o: CallbackOptions) -> Iterable[Observation]:
        for led in self._ledgers():
            for model, c in list(led.by_model.items()):
                yield Observation(
                    c.api_calls, {"port": led.port, "adapter": led.adapter, "model": model}
                )

    def _cost_embeddings(self, _o: CallbackOptions) -> Iterable[Observation]:
        for led in self._ledgers():
            for model, c in list(led.by_model.items()):
                yield Observation(
                    c.embeddings, {"port": led.port, "adapter": led.adapter, "model": model}
                )

    def _cost_amount(self, _o: CallbackOptions) -> Iterable[Observation]:
        for led in self._ledgers():
            for model, c in list(led.by_model.items()):
                yield Observation(
                    c.amount, {"port": led.port, "adapter": led.adapter, "model": model}
                )

    def _br_transitions(self, _o: CallbackOptions) -> Iterable[Observation]:
        for rec in list(self.breakers.values()):
            for (old, new), n in list(rec.transitions.items()):
                yield Observation(
                    n, {"port": rec.port, "adapter": rec.adapter, "from": old, "to": new}
                )

    def _br_state(self, _o: CallbackOptions) -> Iterable[Observation]:
        for rec in list(self.breakers.values()):
            yield Observation(
                _STATE_VALUE.get(rec.state, -1), {"port": rec.port, "adapter": rec.adapter}
            )

    def _h_checks(self, _o: CallbackOptions) -> Iterable[Observation]:
        for (name, port, outcome), n in list(self.health.checks.items()):
            yield Observation(n, {"adapter": name, "port": port, "outcome": outcome})

    def _h_changes(self, _o: CallbackOptions) -> Iterable[Observation]:
        for (name, port, outcome), n in list(self.health.changes.items()):
            yield Observation(n, {"adapter": name, "port": port, "to": outcome})

    def _h_status(self, _o: CallbackOptions) -> Iterable[Observation]:
        for (name, port), v in list(self.health.status.items()):
            yield Observation(v, {"adapter": name, "port": port})

    # -- ownership: which Telemetry exports which stats ----------------------------------
    def adopt(self, stats: Iterable[MethodStats], ledger: CostLedger | None) -> None:
        """Export ``stats`` (and ``ledger``) through this Telemetry only."""
        for s in stats:
            _OWNER[s] = self
        if ledger is not None:
            _LEDGER_OWNER[ledger] = self
        self.ensure_instruments()


_OWNER: weakref.WeakKeyDictionary[MethodStats, Telemetry] = weakref.WeakKeyDictionary()
_LEDGER_OWNER: weakref.WeakKeyDictionary[CostLedger, Telemetry] = weakref.WeakKeyDictionary()
_DEFAULT: Telemetry | None = None


def default_telemetry() -> Telemetry:
    """The process-wide Telemetry over OpenTelemetry's global providers."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Telemetry()
    return _DEFAULT


def genai_attributes(
    port: str, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
) -> dict[str, Any]:
    """GenAI span attributes of an LLM, Router or Agent call (request model from the options
    when given, usage from the result's ``usage``)."""
    attrs: dict[str, Any] = {}
    op = {"complete": "chat", "stream": "chat", "run": "invoke_agent", "route": "chat"}.get(
        method, method
    )
    attrs[GEN_AI_OPERATION_NAME] = op
    opts = kwargs.get("opts", args[1] if len(args) > 1 else None)
    model = getattr(opts, "model", None)
    if model is None:
        completion = getattr(opts, "completion", None)
        model = getattr(completion, "model", None)
    if model is None:
        model = getattr(result, "model", None)
    if isinstance(model, str):
        attrs[GEN_AI_REQUEST_MODEL] = model
    response_model = getattr(result, "model", None)
    if isinstance(response_model, str):
        attrs[GEN_AI_RESPONSE_MODEL] = response_model
    provider = getattr(result, "provider", None)
    if isinstance(provider, str):
        attrs[GEN_AI_SYSTEM] = provider
    usage = getattr(result, "usage", None)
    if usage is not None:
        attrs[GEN_AI_USAGE_INPUT_TOKENS] = int(getattr(usage, "input_tokens", 0))
        attrs[GEN_AI_USAGE_OUTPUT_TOKENS] = int(getattr(usage, "output_tokens", 0))
    return attrs
