"""Iterations over HTTP: JSON lines by default, server-sent events on request, an explicit
end; heartbeats detect a dead connection under a subscription; the boundary protects a
remote entry like any other."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM
from portfolio_core.adapters.remote import RemoteEventStore
from portfolio_core.boundary import CircuitOpenError
from portfolio_core.manifest import load
from portfolio_core.ports import LLM, EventStore, NewEvent, RecordedEvent
from portfolio_core.ports.errors import UnavailableError
from portfolio_core.testing.faults import BackgroundFaultProxy
from tests.portal.served import ServedRegistry

TEXT = "one two three four"


@pytest.fixture(scope="module")
def model(served: ServedRegistry) -> str:
    return served.add(LLM, lambda: SimulatedLLM([TEXT]))


def test_json_lines(served: ServedRegistry, model: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{served.base}/v1/entries/{model}/stream", json=body)
    assert response.headers["content-type"] == "application/jsonl"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1] == {"end": True}
    items = [line["item"] for line in lines[:-1]]
    assert "".join(i["text"] for i in items) == TEXT
    assert items[-1]["finish_reason"] == "stop"


def test_server_sent_events(served: ServedRegistry, model: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    headers = {"accept": "text/event-stream"}
    response = httpx.post(f"{served.base}/v1/entries/{model}/stream", json=body, headers=headers)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in response.text.strip().split("\n\n")]
    assert [e[0] for e in events[-1:]] == ["event: end"]
    texts = [json.loads(e[1].removeprefix("data: "))["text"] for e in events[:-1]]
    assert "".join(texts) == TEXT


def test_an_iteration_error_before_the_first_item_is_a_problem(
    served: ServedRegistry, model: str
) -> None:
    response = httpx.post(f"{served.base}/v1/entries/{model}/stream", json={"messages": []})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_heartbeats_notice_a_dead_connection_under_a_subscription(
    served: ServedRegistry,
) -> None:
    name = served.add(EventStore, MemoryEventStore)
    proxy = BackgroundFaultProxy(("127.0.0.1", served.port))
    writer = RemoteEventStore(served.address(name))
    reader = RemoteEventStore(
        f"ws://127.0.0.1:{proxy.port}/{name}", heartbeat=0.2, reconnect_delay=0.05
    )
    seen: list[int] = []

    async def handle(event: RecordedEvent) -> None:
        seen.append(event.position)

    try:
        await writer.append("s", [NewEvent("E")])
        subscription = await reader.subscribe(handle)
        await subscription.wait_until(1, 10)
        await asyncio.to_thread(proxy.stall)  # the connection stays open but silent
        for _ in range(100):
            if subscription.reconnects:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        assert subscription.reconnects >= 1, "a silent connection went unnoticed"  # type: ignore[attr-defined]
        await asyncio.to_thread(proxy.restore)
        await writer.append("s", [NewEvent("E")])
        await subscription.wait_until(2, 10)
        assert seen == [1, 2]
        await reader.unsubscribe(subscription)
    finally:
        await writer.aclose()
        await reader.aclose()
        await asyncio.to_thread(proxy.close)


async def test_boundary_protection_applies_to_a_remote_entry(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        "  events:\n"
        "    port: event_store\n"
        "    address: http://127.0.0.1:9/events\n"  # nothing listens on port 9
        "    config: {connect_timeout: 1}\n"
        "    protection:\n"
        "      retry: {attempts: 2, backoff: 0.01}\n"
        "      circuit_breaker: {fail_max: 2, reset_timeout: 60}\n"
    )
    wiring = load(manifest)
    events = wiring.entries["events"].adapter
    try:
        for _ in range(2):
            with pytest.raises(UnavailableError):
                await events.read_all()
        with pytest.raises(CircuitOpenError):
            await events.read_all()
        stats = events.boundary_stats["read_all"]  # type: ignore[attr-defined]
        assert stats.calls >= 2
    finally:
        await wiring.entries["events"].instance.aclose()  # type: ignore[attr-defined]
