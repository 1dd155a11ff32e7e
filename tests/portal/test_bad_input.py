"""Bad requests get a clear 4xx problem, never a 500, and change nothing."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import httpx
import pytest

from portfolio_core.adapters.memory.cache import MemoryCache
from portfolio_core.adapters.remote import RemoteLLM
from portfolio_core.ports import LLM, Cache, Message
from portfolio_core.ports.errors import InvalidInputError
from tests.portal.faulty import CountingLLM
from tests.portal.served import ServedRegistry


@pytest.fixture(scope="module")
def cache(served: ServedRegistry) -> str:
    return served.add(Cache, MemoryCache)


def post(served: ServedRegistry, path: str, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{served.base}/v1/entries/{path}", timeout=10, **kwargs)  # type: ignore[arg-type]


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize(
    ("method", "payload", "field"),
    [
        ("enqueue", {"job": {"task": "t", "priority": 1.5}}, "priority"),
        ("enqueue", {"job": {"task": "t", "max_attempts": True}}, "max_attempts"),
        ("enqueue_many", {"jobs": [{"task": "t"}, {"task": "t", "priority": "x"}]}, "priority"),
        ("enqueue", {"job": "not-a-job"}, "job"),
        ("reserve", {"queue": "q", "lease": "30"}, "lease"),
    ],
)
def test_a_bad_field_of_a_value_object_is_named_as_the_adapter_would(
    served: ServedRegistry, method: str, payload: dict[str, object], field: str
) -> None:
    """A NewJob whose priority is not an int is refused naming ``priority`` (what the job
    queue itself says), not the ``job`` argument that carries it."""
    from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
    from portfolio_core.ports import JobQueue

    queue = served.add(JobQueue, MemoryJobQueue)
    body = problem(post(served, f"{queue}/{method}", json=payload), 400)
    assert body["field"] == field, body


def test_malformed_json(served: ServedRegistry, cache: str) -> None:
    body = problem(post(served, f"{cache}/get", content=b'{"key": "k"'), 400)
    assert body["type"] == "urn:portfolio-core:problem:invalid-input"
    assert body["field"] == "body"
    assert "not valid JSON" in str(body["detail"])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"key": 7}, "key"),
        ({"key": "k", "value": 1, "ttl": "10"}, "ttl"),
        ({"keys": "not-a-list"}, "keys"),
        ({"key": "k", "surprise": 1}, "surprise"),
        ({}, "key"),
    ],
)
def test_wrong_types_name_the_argument(
    served: ServedRegistry, cache: str, payload: dict[str, object], field: str
) -> None:
    method = "get_many" if "keys" in payload else ("put" if "value" in payload else "get")
    body = problem(post(served, f"{cache}/{method}", json=payload), 400)
    assert body["field"] == field, body


def test_unknown_entry_and_method(served: ServedRegistry, cache: str) -> None:
    body = problem(post(served, "no-such-entry/get", json={"key": "k"}), 404)
    assert body["type"] == "urn:portfolio-core:problem:not-found"
    body = problem(post(served, f"{cache}/no_such_method", json={}), 404)
    assert body["key"] == "no_such_method"
    # a Python attribute that is not a port method is not reachable either
    problem(post(served, f"{cache}/__init__", json={}), 404)


def test_oversized_body(served: ServedRegistry, cache: str) -> None:
    limit = served.portal.config.limits.max_body_bytes
    big = json.dumps({"key": "k", "value": "x" * limit}).encode()
    body = problem(post(served, f"{cache}/put", content=big), 413)
    assert body["type"] == "urn:portfolio-core:problem:invalid-input"

    def chunks():  # no content-length: the limit holds while reading
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    problem(post(served, f"{cache}/put", content=chunks()), 413)
    assert httpx.post(f"{served.base}/v1/entries/{cache}/exists", json={"key": "k"}).json() is False


def test_deep_json(served: ServedRegistry, cache: str) -> None:
    depth = served.portal.config.limits.max_json_depth + 1
    deep = '{"key": "k", "value": ' + "[" * depth + "]" * depth + "}"
    body = problem(post(served, f"{cache}/put", content=deep.encode()), 400)
    assert "nests deeper" in str(body["detail"])
    shallow = '{"key": "k", "value": ' + "[" * 10 + "]" * 10 + "}"
    assert post(served, f"{cache}/put", content=shallow.encode()).status_code == 200
    # brackets inside strings do not count
    text = json.dumps({"key": "k2", "value": "[" * (depth + 5)})
    assert post(served, f"{cache}/put", content=text.encode()).status_code == 200


async def test_websocket_bad_frames(served: ServedRegistry, cache: str) -> None:
    depth = served.portal.config.limits.max_json_depth + 1
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{served.port}/v1/ws") as ws,
    ):

        async def exchange(frame: str) -> dict[str, object]:
            await ws.send_str(frame)
            return json.loads((await ws.receive(timeout=10)).data)  # type: ignore[no-any-return]

        assert (await exchange("{not json"))["error"]["code"] == -32700  # type: ignore[index]
        assert (await exchange('{"id": 1}'))["error"]["code"] == -32600  # type: ignore[index]
        reply = await exchange('{"jsonrpc":"2.0","id":2,"method":"nope.get","params":{}}')
        assert reply["error"]["code"] == -32601  # type: ignore[index]
        reply = await exchange(
            json.dumps({"jsonrpc": "2.0", "id": 3, "method": f"{cache}.get", "params": {"key": 1}})
        )
        assert reply["error"]["code"] == -32602  # type: ignore[index]
        assert reply["error"]["data"]["field"] == "key"  # type: ignore[index]
        deep = '{"jsonrpc":"2.0","id":4,"method":"x","params":' + "[" * depth + "]" * depth + "}"
        assert (await exchange(deep))["error"]["code"] == -32600  # type: ignore[index]
        reply = await exchange(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 5,
                    "method": f"{cache}.exists",
                    "params": {"key": "absent"},
                }
            )
        )
        assert reply == {"jsonrpc": "2.0", "id": 5, "result": False}


async def test_remote_adapter_refuses_what_json_cannot_carry(
    served: ServedRegistry, cache: str
) -> None:
    from portfolio_core.adapters.remote import RemoteCache

    remote = RemoteCache(served.address(cache))
    try:
        for bad in [(1, 2), {1, 2}, b"bytes", float("nan"), {1: "int key"}, object(), "\udc80"]:
            with pytest.raises(InvalidInputError) as info:
                await remote.put("k", bad)
            assert info.value.field == "value"
    finally:
        await remote.aclose()


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_client_disconnect_mid_stream_closes_the_adapters_iterator(
    served: ServedRegistry, scheme: str
) -> None:
    llm = CountingLLM(chunks=10_000, delay=0.005)
    name = served.add(LLM, lambda: llm)
    remote = RemoteLLM(served.address(name, scheme))
    stream = remote.stream([Message("user", "go")])
    for _ in range(3):
        await anext(stream)
    await remote.aclose()  # the connection goes away without ending the stream
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.to_thread(llm.closed_event.wait, 10)
    assert (llm.opened, llm.closed) == (1, 1), "the server kept iterating for a gone client"
    sent = llm.sent
    await asyncio.sleep(0.1)
    assert llm.sent == sent
    assert llm.sent < 10_000


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_the_deepest_value_a_port_stores_passes_the_depth_limit(
    served: ServedRegistry, scheme: str
) -> None:
    from portfolio_core.adapters.memory.event_store import MemoryEventStore
    from portfolio_core.adapters.remote import RemoteEventStore
    from portfolio_core.ports import EventStore, NewEvent
    from portfolio_core.ports.values import MAX_VALUE_DEPTH

    deep: object = 1
    for _ in range(MAX_VALUE_DEPTH - 1):  # inside the data dict: MAX_VALUE_DEPTH in all
        deep = [deep]
    name = served.add(EventStore, MemoryEventStore)
    remote = RemoteEventStore(served.address(name, scheme))
    try:
        await remote.append("s", [NewEvent("Deep", {"x": deep})])
        (event,) = await remote.read("s")
        assert event.data == {"x": deep}
        with pytest.raises(InvalidInputError):
            await remote.append("s", [NewEvent("Deeper", {"x": [deep]})])
    finally:
        await remote.aclose()
