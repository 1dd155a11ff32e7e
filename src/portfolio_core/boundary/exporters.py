"""Exporters for the boundary's telemetry (need the ``otel`` extra: the SDK, the Prometheus
exporter and prometheus-client). Nothing here is imported unless you call it.

* `console_exporters` - spans and metrics printed to a stream (or the log);
* `prometheus_endpoint` - a scrapable ``/metrics`` endpoint over HTTP;
* `otlp_exporters` - OTLP over gRPC/HTTP when ``opentelemetry-exporter-otlp`` is
  installed (optional).

Each returns providers you can hand to `Telemetry`
(or install globally with ``set_global=True``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

from portfolio_core.boundary.telemetry import Telemetry

__all__ = ["PrometheusEndpoint", "console_exporters", "otlp_exporters", "prometheus_endpoint"]


def _install(telemetry: Telemetry, set_global: bool) -> None:
    if set_global:
        from opentelemetry import metrics, trace

        if telemetry._tracer_provider is not None:
            trace.set_tracer_provider(telemetry._tracer_provider)
        if telemetry._meter_provider is not None:
            metrics.set_meter_provider(telemetry._meter_provider)


def console_exporters(
    *, stream: TextIO | None = None, interval_ms: int = 60_000, set_global: bool = False
) -> Telemetry:
    """Spans and metrics printed as JSON to ``stream`` (stdout)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    out = stream or sys.stdout
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
    reader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(out=out), export_interval_millis=interval_ms
    )
    telemetry = Telemetry(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    _install(telemetry, set_global)
    return telemetry


@dataclass
class PrometheusEndpoint:
    """A running ``/metrics`` endpoint; ``url`` is what Prometheus scrapes."""

    telemetry: Telemetry
    host: str
    port: int
    _server: Any
    _registry: Any

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop the HTTP server (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def prometheus_endpoint(
    *, host: str = "127.0.0.1", port: int = 9464, set_global: bool = False
) -> PrometheusEndpoint:
    """Serve the boundary's metrics for Prometheus on ``host:port`` (``port=0``: ephemeral).

    Uses a private prometheus-client registry, so several endpoints (and tests) do not
    collide.
    """
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=True)
    try:
        reader = PrometheusMetricReader(registry=registry)
    except TypeError:  # older exporter: registers with the global registry; move it
        from prometheus_client import REGISTRY

        reader = PrometheusMetricReader()
        collector = reader._collector
        REGISTRY.unregister(collector)
        registry.register(collector)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    _install(telemetry, set_global)
    return PrometheusEndpoint(telemetry, host, server.server_port, server, registry)


def otlp_exporters(*, endpoint: str | None = None, set_global: bool = False) -> Telemetry:
    """OTLP (gRPC) span and metric exporters; needs ``opentelemetry-exporter-otlp``."""
    try:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # type: ignore[import-not-found]  # optional package
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]  # optional package
            OTLPSpanExporter,
        )
    except ImportError as exc:
        raise RuntimeError("OTLP export needs the 'opentelemetry-exporter-otlp' package") from exc
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint))
    telemetry = Telemetry(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    _install(telemetry, set_global)
    return telemetry
