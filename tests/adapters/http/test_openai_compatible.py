"""The OpenAI-compatible LLM against a local in-process HTTP server (never the internet)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from portfolio_core.adapters.http.openai_compatible import (
    OpenAICompatibleLLM,
    OpenAICompatibleLLMConfig,
)
from portfolio_core.ports import (
    LLM,
    CompletionOptions,
    InvalidInputError,
    Message,
    PortTimeoutError,
    RateLimitedError,
    ToolSpec,
    UnavailableError,
)
from portfolio_core.testing.contracts.llm import LLMContract

HI = [Message("system", "be nice"), Message("user", "hello")]
KEY = "sk-test-very-secret"


@dataclass
class Script:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream_events: list[str] | None = None
    delay: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)


def completion_body(text: str = "hi there", usage: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "served-model",
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 11, "completion_tokens": 2}
    return body


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def _reply(self) -> None:
            if script.delay:
                stop.wait(script.delay)
            if script.stream_events is not None and script.status == 200:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for event in script.stream_events:
                    self.wfile.write(f"data: {event}\n\n".encode())
                    self.wfile.flush()
                return
            raw = json.dumps(script.body or completion_body()).encode()
            self.send_response(script.status)
            for k, v in script.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            script.seen.append(json.loads(self.rfile.read(length)))
            script.auth.append(self.headers.get("Authorization"))
            self._reply()

        def do_GET(self) -> None:
            script.body = script.body or {"data": []}
            self._reply()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


async def test_complete_sends_the_conversation_and_reports_usage(
    server: tuple[str, Script],
) -> None:
    url, script = server
    llm = OpenAICompatibleLLM(url, "m-1", api_key=KEY)
    assert isinstance(llm, LLM)
    try:
        tool = ToolSpec("add", "Add", {"type": "object", "properties": {"a": {"type": "integer"}}})
        c = await llm.complete(HI, CompletionOptions(max_tokens=5, stop=("x",), tools=(tool,)))
    finally:
        await llm.aclose()
    assert (c.text, c.model, c.finish_reason) == ("hi there", "served-model", "stop")
    assert (c.usage.input_tokens, c.usage.output_tokens) == (11, 2)
    sent = script.seen[0]
    assert sent["model"] == "m-1"
    assert sent["messages"] == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "hello"},
    ]
    assert sent["max_tokens"] == 5
    assert sent["stop"] == ["x"]
    assert sent["tools"][0]["function"]["name"] == "add"
    assert script.auth == [f"Bearer {KEY}"]


async def test_tool_calls_are_parsed(server: tuple[str, Script]) -> None:
    url, script = server
    script.body = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a": 1}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }
    llm = OpenAICompatibleLLM(url, "m")
    try:
        c = await llm.complete(HI)
    finally:
        await llm.aclose()
    assert c.finish_reason == "tool_calls"
    assert c.tool_calls[0].name == "add"
    assert dict(c.tool_calls[0].arguments) == {"a": 1}


async def test_missing_usage_is_estimated(server: tuple[str, Script]) -> None:
    url, script = server
    script.body = completion_body(usage=False)
    llm = OpenAICompatibleLLM(url, "m")
    try:
        c = await llm.complete(HI)
    finally:
        await llm.aclose()
    assert c.usage.input_tokens > 0
    assert c.usage.output_tokens > 0


async def test_stream_over_sse(server: tuple[str, Script]) -> None:
    url, script = server
    script.stream_events = [
        json.dumps({"choices": [{"delta": {"content": "Hel"}}]}),
        json.dumps({"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]}),
        json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}),
        "[DONE]",
    ]
    llm = OpenAICompatibleLLM(url, "m")
    try:
        chunks = [c async for c in llm.stream(HI)]
    finally:
        await llm.aclose()
    assert "".join(c.text for c in chunks) == "Hello"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.input_tokens == 7
    assert script.seen[0]["stream"] is True


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (429, {"Retry-After": "3"}, RateLimitedError, 3.0),
        (500, {}, UnavailableError, None),
        (503, {}, UnavailableError, None),
        (408, {}, PortTimeoutError, None),
        (400, {}, InvalidInputError, None),
        (401, {}, InvalidInputError, None),
    ],
)
async def test_http_errors_are_translated(
    server: tuple[str, Script],
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    retry_after: float | None,
) -> None:
    url, script = server
    script.status, script.headers = status, headers
    script.body = {"error": {"message": "nope"}}
    llm = OpenAICompatibleLLM(url, "m", api_key=KEY)
    try:
        with pytest.raises(error) as info:
            await llm.complete(HI)
        with pytest.raises(error):
            _ = [c async for c in llm.stream(HI)]
    finally:
        await llm.aclose()
    assert KEY not in str(info.value)
    if retry_after is not None:
        assert info.value.retry_after == retry_after  # type: ignore[attr-defined]


async def test_timeout_and_refused_connection(server: tuple[str, Script]) -> None:
    url, script = server
    script.delay = 2.0
    llm = OpenAICompatibleLLM(url, "m", timeout=0.2)
    try:
        with pytest.raises(PortTimeoutError):
            await llm.complete(HI)
    finally:
        await llm.aclose()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    dead = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port}/v1", "m", timeout=1)
    try:
        with pytest.raises(UnavailableError):
            await dead.complete(HI)
        with pytest.raises(UnavailableError):
            await dead.ping()
    finally:
        await dead.aclose()


async def test_ping_passes_on_a_healthy_server_and_fails_on_an_unwell_one(
    server: tuple[str, Script],
) -> None:
    url, script = server
    llm = OpenAICompatibleLLM(url, "m")
    await llm.start()
    await llm.ping()  # the server answers 200
    script.status = 503
    with pytest.raises(UnavailableError):
        await llm.ping()
    await llm.aclose()
    await llm.aclose()  # idempotent


async def test_bad_input_and_secret_hygiene() -> None:
    llm = OpenAICompatibleLLM.from_config(
        OpenAICompatibleLLMConfig(
            base_url="http://127.0.0.1:1/v1", model="m", api_key=SecretStr(KEY)
        )
    )
    assert KEY not in repr(llm)
    cfg = OpenAICompatibleLLMConfig(base_url="http://x/v1", model="m", api_key=SecretStr(KEY))
    assert KEY not in repr(cfg)
    with pytest.raises(InvalidInputError):
        await llm.complete([])
    await llm.aclose()


def test_retry_after_header_forms() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from portfolio_core.adapters.http.openai_compatible import _retry_after

    assert _retry_after("2.5") == 2.5
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (_retry_after(later) or 0) <= 30


@pytest.fixture
def chat_server() -> Iterator[str]:
    """A tiny OpenAI-compatible server: answers with the words of the last message, truncated
    to max_tokens, whole or as server-sent events."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            text = "echo " + body["messages"][-1]["content"]
            for stop in body.get("stop") or ():  # as OpenAI does: the text ends before a stop
                text = text.split(stop, 1)[0]
            words = text.split()
            limit = body.get("max_tokens", 256)
            finish = "length" if len(words) > limit else "stop"
            words = words[:limit]
            usage = {"prompt_tokens": 5 * len(body["messages"]), "completion_tokens": len(words)}
            if body.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    event = {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                end = {"choices": [{"delta": {}, "finish_reason": finish}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                self.wfile.write(
                    f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
                )
                self.wfile.write(b"data: [DONE]\n\n")
                return
            raw = json.dumps(
                {
                    "model": body["model"],
                    "choices": [{"message": {"content": " ".join(words)}, "finish_reason": finish}],
                    "usage": usage,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class TestOpenAICompatibleLLMContract(LLMContract):
    @pytest.fixture
    def make_adapter(self, chat_server: str) -> Callable[[], OpenAICompatibleLLM]:
        return lambda: OpenAICompatibleLLM(chat_server, "m", api_key=KEY, timeout=10)
