"""The OpenAI-compatible LLM against a hostile server on 127.0.0.1: malformed shapes, a
trickling server, a cut stream, an oversized body, a server echoing the API key. Every
failure is a port error (a provider failure the router falls back from), never a raw
exception, a hang or a leaked secret."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points

import pytest

from portfolio_core.adapters.http.openai_compatible import OpenAICompatibleLLM
from portfolio_core.ports import (
    Message,
    PortError,
    PortTimeoutError,
    Provider,
    UnavailableError,
)

HI = [Message("user", "hello")]
KEY = "sk-live-Zr9pw@Qx7/#?-0123456789abcdef"

Behaviour = Callable[[socket.socket, bytes, threading.Event], None]


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class Hostile:
    """A raw TCP server on 127.0.0.1 answering every request with ``behaviour``."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = lambda conn, request, stop: None
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = _read_request(conn)
                self.behaviour(conn, request, self.stop)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)
        for t in self.threads:
            t.join(5)


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    try:
        yield server
    finally:
        server.close()


def reply(body: bytes, status: str = "200 OK", content_type: str = "application/json") -> Behaviour:
    def behaviour(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    return behaviour


def sse(events: list[bytes], *, done: bool) -> Behaviour:
    def behaviour(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        for event in events:
            conn.sendall(b"data: " + event + b"\n\n")
        if done:
            conn.sendall(b"data: [DONE]\n\n")

    return behaviour


DEEP = b"[" * 100_000 + b"]" * 100_000
MALFORMED_BODIES = {
    "a list": b"[]",
    "null": b"null",
    "a string": b'"hello"',
    "not json": b"<html>502 bad gateway</html>",
    "truncated json": b'{"choices": [',
    "invalid utf-8": b'{"choices": "\xff\xfe"}',
    "no choices": b"{}",
    "empty choices": b'{"choices": []}',
    "choices null": b'{"choices": null}',
    "choices a string": b'{"choices": "abc"}',
    "a null choice": b'{"choices": [null]}',
    "message a string": b'{"choices": [{"message": "text"}]}',
    "content a number": b'{"choices": [{"message": {"content": 5}}]}',
    "tool_calls a string": b'{"choices": [{"message": {"tool_calls": "x"}}]}',
    "function a number": b'{"choices": [{"message": {"tool_calls": [{"function": 3}]}}]}',
    "name a list": b'{"choices": [{"message": {"tool_calls": [{"function": {"name": ["a"]}}]}}]}',
    "finish_reason a map": b'{"choices": [{"finish_reason": {"a": 1}}]}',
    "model a number": b'{"choices": [{"message": {"content": "ok"}}], "model": 7}',
    "nested 100000 deep": DEEP,
    "arguments nested deep": b'{"choices": [{"message": {"tool_calls": [{"function": '
    b'{"name": "f", "arguments": ' + DEEP + b"}}]}}]}",
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
async def test_every_malformed_completion_is_unavailable(hostile: Hostile, body: bytes) -> None:
    hostile.behaviour = reply(body)
    llm = OpenAICompatibleLLM(hostile.url, "m", timeout=5)
    try:
        with pytest.raises(UnavailableError, match="malformed"):
            await llm.complete(HI)
    finally:
        await llm.aclose()


MALFORMED_EVENTS = {
    "not json": b"not json",
    "a list": b"[1]",
    "choices a string": b'{"choices": "x"}',
    "delta a string": b'{"choices": [{"delta": "x"}]}',
    "content a number": b'{"choices": [{"delta": {"content": 3}}]}',
    "nested deep": DEEP,
}


@pytest.mark.parametrize("event", MALFORMED_EVENTS.values(), ids=MALFORMED_EVENTS.keys())
async def test_every_malformed_stream_event_is_unavailable(hostile: Hostile, event: bytes) -> None:
    ok = json.dumps({"choices": [{"delta": {"content": "Hi"}}]}).encode()
    hostile.behaviour = sse([ok, event], done=True)
    llm = OpenAICompatibleLLM(hostile.url, "m", timeout=5)
    try:
        with pytest.raises(UnavailableError, match="malformed stream event"):
            _ = [c async for c in llm.stream(HI)]
    finally:
        await llm.aclose()


async def test_a_cut_stream_raises_after_the_chunks_it_sent(hostile: Hostile) -> None:
    pieces = [json.dumps({"choices": [{"delta": {"content": w}}]}).encode() for w in "abc"]
    hostile.behaviour = sse(pieces, done=False)
    llm = OpenAICompatibleLLM(hostile.url, "m", timeout=5)
    got: list[str] = []

    async def consume() -> None:
        async for chunk in llm.stream(HI):
            got.append(chunk.text)

    try:
        with pytest.raises(UnavailableError, match="cut"):
            await consume()
    finally:
        await llm.aclose()
    assert got == ["a", "b", "c"], "the chunks received before the cut are delivered"


async def test_a_stream_with_a_finish_reason_but_no_done_is_complete(hostile: Hostile) -> None:
    last = json.dumps({"choices": [{"delta": {"content": "x"}, "finish_reason": "length"}]})
    hostile.behaviour = sse([last.encode()], done=False)
    llm = OpenAICompatibleLLM(hostile.url, "m", timeout=5)
    try:
        chunks = [c async for c in llm.stream(HI)]
    finally:
        await llm.aclose()
    assert chunks[-1].finish_reason == "length"


def trickle(head: bytes, every: float) -> Behaviour:
    def behaviour(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(head)
        while not stop.wait(every):
            conn.sendall(b" ")

    return behaviour


async def test_a_trickling_server_hits_the_total_deadline_of_complete(hostile: Hostile) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    hostile.behaviour = trickle(head, 0.02)  # a byte every 20 ms: no single read times out
    llm = OpenAICompatibleLLM(hostile.url, "m", timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(PortTimeoutError) as caught:
            await llm.complete(HI)
    finally:
        await llm.aclose()
    assert time.monotonic() - started < 3
    assert caught.value.timeout == 0.5


async def test_a_trickling_stream_hits_the_total_deadline_of_stream(hostile: Hostile) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    hostile.behaviour = trickle(head, 0.02)
    llm = OpenAICompatibleLLM(hostile.url, "m", timeout=0.3, stream_timeout=0.6)
    started = time.monotonic()
    try:
        with pytest.raises(PortTimeoutError):
            _ = [c async for c in llm.stream(HI)]
    finally:
        await llm.aclose()
    assert time.monotonic() - started < 3


def endless(head: bytes, chunk: bytes) -> Behaviour:
    def behaviour(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(head)
        while not stop.is_set():
            conn.sendall(chunk)

    return behaviour


async def test_an_oversized_body_is_refused(hostile: Hostile) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n"
    hostile.behaviour = endless(head, b'{"a":' * 1000)
    llm = OpenAICompatibleLLM(hostile.url, "m", timeout=5, max_response_bytes=100_000)
    try:
        with pytest.raises(UnavailableError, match="larger than 100000 bytes"):
            await llm.complete(HI)
    finally:
        await llm.aclose()


async def test_an_oversized_stream_is_refused(hostile: Hostile) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
    event = b"data: " + json.dumps({"choices": [{"delta": {"content": "x"}}]}).encode() + b"\n\n"
    hostile.behaviour = endless(head, event * 100)
    llm = OpenAICompatibleLLM(hostile.url, "m", timeout=5, max_response_bytes=50_000)
    try:
        with pytest.raises(UnavailableError, match="larger than 50000 bytes"):
            _ = [c async for c in llm.stream(HI)]
    finally:
        await llm.aclose()


def echo_key(status: str) -> Behaviour:
    def behaviour(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        auth = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"authorization:")
        )
        key = auth.removeprefix(b"Bearer ")
        body = b"invalid key " + key + b"; did you mean " + key[:12] + b"...? (" + key[-10:] + b")"
        reply(body, status=status, content_type="text/plain")(conn, request, stop)

    return behaviour


@pytest.mark.parametrize("status", ["401 Unauthorized", "429 Too Many", "500 Oops"])
async def test_a_server_echoing_the_key_never_gets_it_out(hostile: Hostile, status: str) -> None:
    hostile.behaviour = echo_key(status)
    llm = OpenAICompatibleLLM(
        hostile.url, "m", api_key=KEY, timeout=5, headers={"X-Org-Token": "org-token-42-secret"}
    )
    try:
        with pytest.raises(PortError) as caught:
            await llm.complete(HI)
        with pytest.raises(PortError) as streamed:
            _ = [c async for c in llm.stream(HI)]
    finally:
        await llm.aclose()
    for error in (caught.value, streamed.value):
        text = str(error) + repr(error)
        assert "invalid key" in text, "the detail of the error body is kept"
        for i in range(len(KEY) - 8 + 1):
            assert KEY[i : i + 8] not in text, f"a piece of the key leaked: {text!r}"


async def test_credentials_in_the_base_url_never_get_out(hostile: Hostile) -> None:
    hostile.behaviour = reply(b"{}", status="503 Down")
    url = hostile.url.replace("http://", "http://user:Zr9pw%40Qx7@")
    llm = OpenAICompatibleLLM(url, "m", timeout=5)
    try:
        with pytest.raises(UnavailableError) as caught:
            await llm.complete(HI)
    finally:
        await llm.aclose()
    for text in (str(caught.value), repr(llm)):
        assert "Zr9pw" not in text
        assert "127.0.0.1" in text


async def test_the_router_falls_back_from_a_malformed_provider(hostile: Hostile) -> None:
    hostile.behaviour = reply(b'{"choices": [{"message": "text"}]}')
    (memory,) = entry_points(group="portfolio_core.adapters.router", name="memory")
    router = memory.load()()
    scripted = entry_points(group="portfolio_core.adapters.llm", name="scripted")
    (scripted_llm,) = scripted
    bad = OpenAICompatibleLLM(hostile.url, "m", timeout=5)
    good = scripted_llm.load()(responses=["from the good one"])
    await router.register_provider(Provider("bad", "m"), bad)
    await router.register_provider(Provider("good", "m"), good)
    try:
        answer = await router.complete(HI)
    finally:
        await bad.aclose()
    assert answer.text == "from the good one"


async def test_retry_after_that_is_not_finite_is_ignored() -> None:
    from portfolio_core.adapters.http.openai_compatible import _retry_after

    assert _retry_after("inf") is None
    assert _retry_after("nan") is None
    assert _retry_after("1e400") is None
    await asyncio.sleep(0)
