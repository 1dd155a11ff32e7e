"""Exporters: ``set_global=True`` installs the providers globally, the Prometheus endpoint
closes idempotently, and OTLP export without its package fails with a clear error."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from opentelemetry import metrics, trace

from portfolio_core.boundary.exporters import console_exporters, otlp_exporters


def test_set_global_installs_both_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: dict[str, Any] = {}
    monkeypatch.setattr(trace, "set_tracer_provider", lambda p: installed.update(tracer=p))
    monkeypatch.setattr(metrics, "set_meter_provider", lambda p: installed.update(meter=p))
    telemetry = console_exporters(stream=io.StringIO(), set_global=True)
    try:
        assert installed == {
            "tracer": telemetry._tracer_provider,
            "meter": telemetry._meter_provider,
        }
    finally:
        telemetry.shutdown()


def test_without_set_global_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[object] = []
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    monkeypatch.setattr(metrics, "set_meter_provider", installed.append)
    console_exporters(stream=io.StringIO()).shutdown()
    assert installed == []


def test_prometheus_endpoint_close_is_idempotent() -> None:
    pytest.importorskip("opentelemetry.exporter.prometheus")
    from portfolio_core.boundary.exporters import prometheus_endpoint

    endpoint = prometheus_endpoint(host="127.0.0.1", port=0)
    assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"
    endpoint.close()
    endpoint.close()
    assert endpoint._server is None


def test_otlp_without_its_package_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry in sys.modules makes the import fail, installed or not
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.metric_exporter", None)
    with pytest.raises(RuntimeError, match="'opentelemetry-exporter-otlp' package"):
        otlp_exporters(endpoint="http://127.0.0.1:4317")
