"""Telemetry: spans (in-memory exporter), metrics (in-memory reader), cost, cardinality,
Prometheus scrape, structlog trace context, performance monitor, health aggregator."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from portfolio_core.boundary import PerformanceMonitor, Telemetry, boundary_of, wrap
from portfolio_core.boundary.health import HealthAggregator, HealthChange, HealthState
from portfolio_core.boundary.logs import configure_logging
from portfolio_core.boundary.telemetry import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from portfolio_core.ports import (
    Completion,
    CompletionOptions,
    Message,
    UnavailableError,
    Usage,
    port_by_key,
    tenant_scope,
)
from tests.support.boundary import OPEN_UNTIL, FakeClock, ScriptedCache


class PricedLLM:
    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        structlog.get_logger("test").info("inside the adapter")
        if messages and messages[0].content == "fail":
            raise UnavailableError("provider down")
        return Completion("hi", (opts.model if opts else None) or "m1", Usage(1000, 500))

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Any:
        yield None  # pragma: no cover


@pytest.fixture
def otel() -> tuple[Telemetry, InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    telemetry = Telemetry(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    return telemetry, exporter, reader


def wrapped(
    adapter: object, port: str, name: str, telemetry: dict[str, Any] | None, **more: Any
) -> Any:
    """``adapter`` behind the boundary as entry ``name`` of ``port`` (no protection unless
    given)."""
    more.setdefault("protection", None)
    return wrap(
        adapter, port=port_by_key(port), name=name, adapter_type="t", telemetry=telemetry, **more
    )


def of(reader: InMemoryMetricReader, name: str, adapter: str) -> list[tuple[dict[str, Any], float]]:
    """The data points of metric ``portfolio_core.<name>`` for entry ``adapter``."""
    return [(a, v) for a, v in points(reader, f"portfolio_core.{name}") if a["adapter"] == adapter]


def points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, Any], float]]:
    data = reader.get_metrics_data()
    out: list[tuple[dict[str, Any], float]] = []
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for p in metric.data.data_points:
                        out.append((dict(p.attributes or {}), p.value))  # type: ignore[union-attr]
    return out


async def test_llm_span_has_port_attributes_genai_and_tenant(otel: Any) -> None:
    telemetry, exporter, _ = otel
    llm = wrapped(PricedLLM(), "llm", "gpt", {}, runtime=telemetry)
    with tenant_scope("acme"):
        await llm.complete([Message("user", "hello")], CompletionOptions(model="m1"))
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "llm.complete"
    assert attrs["portfolio_core.port"] == "llm"
    assert attrs["portfolio_core.adapter"] == "gpt"
    assert attrs["portfolio_core.method"] == "complete"
    assert attrs["portfolio_core.outcome"] == "ok"
    assert attrs["portfolio_core.tenant"] == "acme"
    assert attrs[GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[GEN_AI_REQUEST_MODEL] == "m1"
    assert attrs[GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert attrs[GEN_AI_USAGE_OUTPUT_TOKENS] == 500


async def test_error_span_records_outcome_and_status(otel: Any) -> None:
    telemetry, exporter, _ = otel
    llm = wrapped(PricedLLM(), "llm", "gpt", {}, runtime=telemetry)
    with pytest.raises(UnavailableError):
        await llm.complete([Message("user", "fail")])
    (span,) = exporter.get_finished_spans()
    assert span.attributes["portfolio_core.outcome"] == "error"  # type: ignore[index]
    assert span.attributes["error.type"] == "UnavailableError"  # type: ignore[index]
    assert not span.status.is_ok


@pytest.mark.parametrize(
    ("telemetry", "spans"), [({}, []), ({"spans": True}, ["cache.get"])], ids=["default", "opt-in"]
)
async def test_hot_ports_have_no_spans_by_default_but_can_opt_in(
    otel: Any, telemetry: dict[str, Any], spans: list[str]
) -> None:
    runtime, exporter, _ = otel
    await wrapped(ScriptedCache(), "cache", "c", telemetry, runtime=runtime).get("k")
    assert [s.name for s in exporter.get_finished_spans()] == spans


async def test_two_telemetry_runtimes_on_one_meter_provider_both_report() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    first = Telemetry(meter_provider=provider)
    second = Telemetry(meter_provider=provider)
    one = wrapped(ScriptedCache(), "cache", "one", {}, runtime=first)
    two = wrapped(ScriptedCache(), "cache", "two", {}, runtime=second)
    await one.get("k")
    await two.get("k")
    gets = {
        a["adapter"]: v
        for a, v in points(reader, "portfolio_core.calls")
        if a["method"] == "get" and a["outcome"] == "ok"
    }
    assert gets == {"one": 1, "two": 1}


async def test_metrics_calls_errors_durations_and_cost(otel: Any) -> None:
    telemetry, _, reader = otel
    prices = {"m1": {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "per_call": 0.01}}
    llm = wrapped(PricedLLM(), "llm", "gpt", {"cost": {"prices": prices}}, runtime=telemetry)
    await llm.complete([Message("user", "a")], CompletionOptions(model="m1"))
    await llm.complete([Message("user", "b")], CompletionOptions(model="m1"))
    with pytest.raises(UnavailableError):
        await llm.complete([Message("user", "fail")])
    calls = {a["outcome"]: v for a, v in of(reader, "calls", "gpt") if a["method"] == "complete"}
    assert (calls["ok"], calls["error"]) == (2, 1)
    assert [(a["error.type"], v) for a, v in of(reader, "errors", "gpt")] == [
        ("UnavailableError", 1)
    ]
    assert [v for a, v in of(reader, "duration.count", "gpt") if a["method"] == "complete"] == [3]
    buckets = {
        a["le"]: v for a, v in of(reader, "duration.bucket", "gpt") if a["method"] == "complete"
    }
    assert buckets["inf"] == 3
    tokens = {(a["direction"], a["model"]): v for a, v in of(reader, "cost.tokens", "gpt")}
    assert tokens == {("input", "m1"): 2000, ("output", "m1"): 1000}
    amount = [v for _, v in of(reader, "cost.amount", "gpt")]
    assert amount == [pytest.approx(2 * (1000 * 3 / 1e6 + 500 * 15 / 1e6 + 0.01))]


async def test_breaker_transitions_are_metrics(otel: Any) -> None:
    telemetry, _, reader = otel
    cache = wrapped(
        ScriptedCache(errors=[UnavailableError("x")]),
        "cache",
        "brk",
        {},
        protection={"circuit_breaker": {"fail_max": 1}},
        runtime=telemetry,
    )
    with pytest.raises(UnavailableError):
        await cache.get("k")
    transitions = {(a["from"], a["to"]): v for a, v in of(reader, "breaker.transitions", "brk")}
    assert transitions[("closed", "open")] == 1
    assert [v for _, v in of(reader, "breaker.state", "brk")] == [2]


async def test_label_cardinality_is_bounded(otel: Any) -> None:
    telemetry, _, reader = otel

    class Base(Exception):
        pass

    errors: list[BaseException] = [type(f"Error{i}", (Base,), {})() for i in range(50)]
    cache = wrapped(
        ScriptedCache(errors=errors), "cache", "card", {"max_label_values": 5}, runtime=telemetry
    )
    for _ in range(50):
        with pytest.raises(Base):
            await cache.get("k")
    types = {a["error.type"] for a, _ in of(reader, "errors", "card")}
    assert len(types) == 6
    assert "_other" in types


def _scrape(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), response.read().decode()


async def test_prometheus_endpoint_is_scrapable() -> None:
    pytest.importorskip("opentelemetry.exporter.prometheus")
    from portfolio_core.boundary.exporters import prometheus_endpoint

    endpoint = prometheus_endpoint(host="127.0.0.1", port=0)
    try:
        cache = wrapped(ScriptedCache(), "cache", "scraped", {}, runtime=endpoint.telemetry)
        await cache.get("k")
        status, body = await asyncio.to_thread(_scrape, endpoint.url)
        assert status == 200
        lines = [
            line
            for line in body.splitlines()
            if line.startswith("portfolio_core_calls")
            and 'adapter="scraped"' in line
            and 'outcome="ok"' in line
            and 'method="get"' in line
        ]
        assert lines
        assert lines[0].endswith(" 1.0")
    finally:
        endpoint.close()


async def test_log_lines_inside_a_span_carry_trace_and_span_ids(otel: Any) -> None:
    telemetry, exporter, _ = otel
    out = io.StringIO()
    configure_logging(renderer="json", stream=out)
    try:
        llm = wrapped(PricedLLM(), "llm", "gpt", {}, runtime=telemetry)
        await llm.complete([Message("user", "x")])
        structlog.get_logger("test").info("outside")
    finally:
        structlog.reset_defaults()
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    (span,) = exporter.get_finished_spans()
    assert inside["trace_id"] == format(span.context.trace_id, "032x")
    assert inside["span_id"] == format(span.context.span_id, "016x")
    assert "trace_id" not in outside


def test_console_rendering() -> None:
    out = io.StringIO()
    configure_logging(renderer="console", stream=out)
    try:
        structlog.get_logger("t").info("hello", k=1)
    finally:
        structlog.reset_defaults()
    assert "hello" in out.getvalue()
    assert "k=1" in out.getvalue()


async def test_performance_monitor_percentiles_and_error_rate() -> None:
    cache = wrapped(ScriptedCache(errors=[UnavailableError("x")]), "cache", "perf", {})
    with pytest.raises(UnavailableError):
        await cache.get("k")
    for _ in range(9):
        await cache.get("k")
    stats = list(boundary_of(cache).stats.values())  # type: ignore[union-attr]
    (get,) = [m for m in PerformanceMonitor(stats).report() if m.method == "get"]
    assert get.calls == 10
    assert get.error_rate == pytest.approx(0.1)
    assert 0 < get.p50 <= get.p95 <= get.p99


async def test_health_aggregator_status_and_transitions(otel: Any) -> None:
    telemetry, _, reader = otel

    class Pinged:
        def __init__(self) -> None:
            self.ok = True

        async def ping(self) -> None:
            if not self.ok:
                raise UnavailableError("no route")

    a, b = Pinged(), Pinged()
    health = HealthAggregator(timeout=1.0, telemetry=telemetry)
    health.add("a", "cache", a)
    health.add("b", "event_store", b)
    health.add("plain", "tokenizer", object())
    changes: list[HealthChange] = []
    health.add_listener(changes.append)
    health.add_listener(lambda c: 1 / 0)  # a failing listener is ignored
    assert health.status is HealthState.UNKNOWN
    assert await health.check() is HealthState.HEALTHY
    b.ok = False
    assert await health.check() is HealthState.DEGRADED
    assert health.snapshot()["b"].detail == "UnavailableError: no route"
    assert [(c.name, c.old, c.new) for c in changes][-1] == (
        "b",
        HealthState.HEALTHY,
        HealthState.UNHEALTHY,
    )
    health.mark_unhealthy("a")
    await health.check()
    assert health.snapshot()["a"].state is HealthState.UNHEALTHY
    health.mark_healthy("a")
    assert health.snapshot()["a"].state is HealthState.HEALTHY
    status = {a["adapter"]: v for a, v in points(reader, "portfolio_core.health.status")}
    assert status["b"] == 0


async def test_health_ping_timeout_is_unhealthy() -> None:
    class Hangs:
        async def ping(self) -> None:
            await asyncio.sleep(10)

    health = HealthAggregator(timeout=0.02)
    health.add("h", "cache", Hangs())
    assert await health.check() is HealthState.UNHEALTHY
    health.start()
    await health.aclose()


@pytest.mark.parametrize("with_ping", [True, False])
async def test_health_aggregator_judges_a_wrapped_adapter_by_its_breaker_too(
    with_ping: bool,
) -> None:
    class Pinged(ScriptedCache):
        async def ping(self) -> None:
            return None

    clock = FakeClock()
    raw = (Pinged if with_ping else ScriptedCache)(errors=[UnavailableError("down")])
    cache = wrapped(
        raw,
        "cache",
        "guarded",
        None,
        protection={"circuit_breaker": {"fail_max": 1, "reset_timeout": 10}},
        clock=clock,
    )
    health = HealthAggregator()
    health.add("guarded", "cache", cache)
    assert await health.check() is HealthState.HEALTHY
    with pytest.raises(UnavailableError):
        await cache.get("k")
    assert await health.check() is HealthState.UNHEALTHY  # even though a ping succeeds
    assert OPEN_UNTIL.fullmatch(health.snapshot()["guarded"].detail)
    clock.now += 10
    assert await cache.get("k") == "value:k"  # the probe succeeds: closed again
    assert await health.check() is HealthState.HEALTHY
    assert health.snapshot()["guarded"].detail == ""


async def test_metrics_off_exports_nothing(otel: Any) -> None:
    telemetry, _, reader = otel
    cache = wrapped(ScriptedCache(), "cache", "quiet", {"metrics": False}, runtime=telemetry)
    await cache.get("k")
    assert of(reader, "calls", "quiet") == []


def test_health_records_checks_made_elsewhere() -> None:
    health = HealthAggregator()
    changes: list[HealthChange] = []
    health.add_listener(changes.append)
    health.add("db", "event_store", object())
    health.record("db", False, "refused")
    health.record("db", False, "refused")
    health.record("db", True)
    assert [(c.old, c.new) for c in changes] == [
        (HealthState.HEALTHY, HealthState.UNHEALTHY),
        (HealthState.UNHEALTHY, HealthState.HEALTHY),
    ]
    assert health.status is HealthState.HEALTHY


async def test_stream_span_carries_usage_of_the_last_chunk(otel: Any) -> None:
    from portfolio_core.ports import CompletionChunk

    class Streamer(PricedLLM):
        async def stream(self, messages: Sequence[Message], opts: Any = None) -> Any:
            yield CompletionChunk("a")
            yield CompletionChunk("b", "stop", Usage(7, 2))

    telemetry, exporter, _ = otel
    llm = wrapped(Streamer(), "llm", "s", {}, runtime=telemetry)
    assert [c.text async for c in llm.stream([Message("user", "x")])] == ["a", "b"]
    (span,) = exporter.get_finished_spans()
    assert span.name == "llm.stream"
    assert span.attributes[GEN_AI_USAGE_INPUT_TOKENS] == 7  # type: ignore[index]
    assert span.attributes["portfolio_core.outcome"] == "ok"  # type: ignore[index]


async def test_embeddings_are_cost_events(otel: Any) -> None:
    telemetry, _, reader = otel
    llm = wrapped(
        PricedLLM(),
        "llm",
        "emb",
        {"cost": {"prices": {"*": {"per_embedding": 0.001}}}},
        runtime=telemetry,
    )
    handle = boundary_of(llm)
    assert handle is not None
    handle.record_embeddings(30, model="e5")
    embeddings = [v for _, v in of(reader, "cost.embeddings", "emb")]
    assert embeddings == [30]
    assert handle.cost is not None
    assert handle.cost.total_amount == pytest.approx(0.03)


async def test_console_exporter_prints_spans() -> None:
    from portfolio_core.boundary.exporters import console_exporters

    out = io.StringIO()
    telemetry = console_exporters(stream=out)
    llm = wrapped(PricedLLM(), "llm", "console", {}, runtime=telemetry)
    try:
        await llm.complete([Message("user", "x")])
        assert '"name": "llm.complete"' in out.getvalue()
    finally:
        telemetry.shutdown()
