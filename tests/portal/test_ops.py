"""Liveness, readiness (breaker-aware), Prometheus metrics and the generated OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from portfolio_core.adapters.memory.cache import MemoryCache
from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.boundary import boundary_of, wrap
from portfolio_core.portal import ApiKey, AuthConfig, PortalConfig, Scope
from portfolio_core.ports import Cache, EventStore
from portfolio_core.ports.catalogue import port_by_key
from tests.portal.served import ServedRegistry

KEY = "ops-key-0123456789abcdef"
NOTES_ONLY = "notes-only-0123456789abcdef"


@pytest.fixture
def ops() -> Iterator[ServedRegistry]:
    config = PortalConfig(
        auth=AuthConfig(
            keys=[
                ApiKey(name="ops", secret=SecretStr(KEY)),
                ApiKey(
                    name="notes", secret=SecretStr(NOTES_ONLY), scopes=[Scope(entries=["notes"])]
                ),
            ]
        )
    )
    server = ServedRegistry(config)
    server.add(Cache, MemoryCache, name="notes")
    guarded = wrap(
        MemoryCache(),
        port=port_by_key("cache"),
        name="guarded",
        adapter_type="memory",
        telemetry=None,
        protection={"circuit_breaker": {"fail_max": 1, "reset_timeout": 60}},
    )
    server.add(Cache, lambda: guarded, name="guarded")
    server.add(EventStore, MemoryEventStore, name="events")
    yield server
    server.stop()


def auth(key: str = KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_healthz_is_public(ops: ServedRegistry) -> None:
    response = httpx.get(f"{ops.base}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_readyz_follows_registry_health_and_open_breakers(ops: ServedRegistry) -> None:
    ready = httpx.get(f"{ops.base}/readyz", headers=auth())
    assert ready.status_code == 200
    assert ready.json()["status"] == "healthy"
    assert set(ready.json()["entries"]) == {"notes", "guarded", "events"}
    public = httpx.get(f"{ops.base}/readyz")
    assert public.json() == {"status": "healthy"}, "entry names are not shown without a key"
    scoped = httpx.get(f"{ops.base}/readyz", headers=auth(NOTES_ONLY))
    assert set(scoped.json()["entries"]) == {"notes"}

    handle = boundary_of(ops.registry.get(Cache, "guarded"))
    assert handle is not None
    assert handle.breaker is not None
    handle.breaker.open()
    degraded = httpx.get(f"{ops.base}/readyz", headers=auth())
    assert degraded.status_code == 503
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["entries"]["guarded"]["healthy"] is False

    handle.breaker.close()
    ops.registry.mark_unhealthy("events", "draining")
    assert httpx.get(f"{ops.base}/readyz").status_code == 503
    ops.registry.mark_healthy("events")
    assert httpx.get(f"{ops.base}/readyz").status_code == 200


def test_metrics_count_calls_by_entry_method_and_outcome(ops: ServedRegistry) -> None:
    base = f"{ops.base}/v1/entries/notes"
    httpx.post(f"{base}/put", json={"key": "k", "value": 1}, headers=auth())
    httpx.post(f"{base}/get", json={"key": "k"}, headers=auth())
    httpx.post(f"{base}/get", json={"key": 5}, headers=auth())
    assert httpx.get(f"{ops.base}/metrics").status_code == 401
    text = httpx.get(f"{ops.base}/metrics", headers=auth()).text
    assert 'portfolio_portal_calls_total{entry="notes",method="get",outcome="ok"} 1.0' in text
    assert (
        'portfolio_portal_calls_total{entry="notes",method="get",outcome="invalid-input"} 1.0'
        in text
    )
    assert 'portfolio_portal_call_seconds_count{entry="notes",method="put"} 1.0' in text
    assert "portfolio_portal_websockets 0.0" in text
    assert KEY not in text


def test_openapi_document_is_generated_from_the_ports(ops: ServedRegistry) -> None:
    assert httpx.get(f"{ops.base}/openapi.json").status_code == 401
    doc = httpx.get(f"{ops.base}/openapi.json", headers=auth()).json()
    assert doc["openapi"].startswith("3.1")
    put = doc["paths"]["/v1/entries/notes/put"]["post"]
    schema = put["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"key", "value", "ttl"}
    assert set(schema["required"]) == {"key", "value"}
    assert schema["additionalProperties"] is False
    assert "403" in put["responses"]
    append = doc["paths"]["/v1/entries/events/append"]["post"]
    events = append["requestBody"]["content"]["application/json"]["schema"]["properties"]["events"]
    assert events["items"]["$ref"] == "#/components/schemas/NewEvent"
    assert "NewEvent" in doc["components"]["schemas"]
    read = doc["paths"]["/v1/entries/events/read"]["post"]["responses"]["200"]
    assert read["content"]["application/json"]["schema"]["items"]["$ref"].endswith("RecordedEvent")
    assert "/v1/entries/events/subscribe" not in doc["paths"], "only over the WebSocket"
    scoped = httpx.get(f"{ops.base}/openapi.json", headers=auth(NOTES_ONLY)).json()
    assert {p.split("/")[3] for p in scoped["paths"]} == {"notes"}
