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
    CompletionChunk,
    CompletionOptions,
    InvalidInputError,
    Message,
    PortTimeoutError,
    RateLimitedError,
    ToolCall,
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


def _event(delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _piece(
    index: int | None = None,
    *,
    id: str | None = None,
    name: str | None = None,
    arguments: object = None,
) -> dict[str, Any]:
    piece: dict[str, Any] = {}
    if index is not None:
        piece["index"] = index
    if id is not None:
        piece["id"], piece["type"] = id, "function"
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    if function:
        piece["function"] = function
    return piece


async def _stream_of(url: str, events: list[str], script: Script) -> list[CompletionChunk]:
    script.stream_events = events
    llm = OpenAICompatibleLLM(url, "m")
    try:
        return [c async for c in llm.stream(HI)]
    finally:
        await llm.aclose()


async def test_streamed_tool_call_pieces_are_assembled_into_whole_calls(
    server: tuple[str, Script],
) -> None:
    """Two calls interleaved, ids and names in their first pieces only, arguments cut inside
    keys, strings and escapes, as OpenAI streams them."""
    url, script = server
    events = [
        _event({"role": "assistant", "content": "Checking"}),
        _event({"tool_calls": [_piece(0, id="call_a", name="lookup", arguments="")]}),
        _event({"tool_calls": [_piece(0, arguments='{"wo')]}),
        _event({"tool_calls": [_piece(1, id="call_b", name="add", arguments='{"a": 1')]}),
        _event({"tool_calls": [_piece(0, arguments='rd": "p\\u00f')]}),
        _event({"tool_calls": [_piece(1, arguments=', "b": [2, 3]}')]}),
        _event({"tool_calls": [_piece(0, arguments='8rt"}')]}, "tool_calls"),
        json.dumps({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 12}}),
        "[DONE]",
    ]
    chunks = await _stream_of(url, events, script)
    assert "".join(c.text for c in chunks) == "Checking"
    assert all(not c.tool_calls for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason == "tool_calls"
    assert last.tool_calls == (
        ToolCall("call_a", "lookup", {"word": "p\u00f8rt"}),
        ToolCall("call_b", "add", {"a": 1, "b": [2, 3]}),
    )
    assert last.usage is not None
    assert last.usage.output_tokens == 12


async def test_tool_call_pieces_without_an_index_follow_their_id_or_the_last_call(
    server: tuple[str, Script],
) -> None:
    """Some servers omit ``index``: a piece with a new id begins a call, one without an id
    continues the last call begun; a whole-object ``arguments`` is taken as it is."""
    url, script = server
    events = [
        _event({"tool_calls": [_piece(id="c1", name="lookup", arguments='{"word"')]}),
        _event({"tool_calls": [_piece(arguments=': "a"}')]}),
        _event({"tool_calls": [_piece(id="c2", name="lookup", arguments={"word": "b"})]}),
        _event({"tool_calls": [_piece(id="c1")]}),  # a repeated id continues its call
        _event({}, "tool_calls"),
        "[DONE]",
    ]
    last = (await _stream_of(url, events, script))[-1]
    assert last.tool_calls == (
        ToolCall("c1", "lookup", {"word": "a"}),
        ToolCall("c2", "lookup", {"word": "b"}),
    )


@pytest.mark.parametrize(
    ("pieces", "problem"),
    [
        ([_piece(-1, id="c", name="f")], "negative index"),
        ([_piece(arguments='{"a": 1}')], "no index or id before any call began"),
        ([_piece(0, id="c1", name="f"), _piece(0, id="c2")], "changed the id of tool call 0"),
        ([_piece(0, id="c", name="f"), _piece(0, name="g")], "changed the name of tool call 0"),
        ([_piece(0, id="c", arguments="{}")], "tool call 0 without a function name"),
        (
            [_piece(0, id="c", name="f", arguments={"a": 1}), _piece(0, arguments='{"b"')],
            "both as an object and in pieces",
        ),
        (
            [_piece(0, id="c", name="f", arguments='{"a"'), _piece(0, arguments={"a": 1})],
            "both as an object and in pieces",
        ),
    ],
    ids=["negative", "orphan", "new-id", "new-name", "no-name", "object-then-text", "text-object"],
)
async def test_tool_call_pieces_that_do_not_fit_raise_unavailable_naming_the_call(
    server: tuple[str, Script], pieces: list[dict[str, Any]], problem: str
) -> None:
    url, script = server
    events = [_event({"tool_calls": [piece]}) for piece in pieces]
    events += [_event({}, "tool_calls"), "[DONE]"]
    with pytest.raises(UnavailableError, match=problem):
        await _stream_of(url, events, script)


async def test_tool_call_arguments_that_are_not_a_json_object_are_kept(
    server: tuple[str, Script],
) -> None:
    url, script = server
    events = [
        _event({"tool_calls": [_piece(0, id="c0", name="f", arguments='{"a": ')]}),
        _event({"tool_calls": [_piece(1, id="c1", name="g", arguments="[1, 2]")]}),
        _event({"tool_calls": [_piece(2, id="c2", name="h")]}),
        _event({}, "tool_calls"),
        "[DONE]",
    ]
    last = (await _stream_of(url, events, script))[-1]
    assert [dict(c.arguments) for c in last.tool_calls] == [
        {"_raw": '{"a": '},
        {"_value": [1, 2]},
        {},
    ]


async def test_a_tool_call_cut_by_max_tokens_is_not_returned_and_calls_mean_tool_calls(
    server: tuple[str, Script],
) -> None:
    """finish_reason 'length' drops a cut call (whole or streamed); a server saying 'stop'
    with calls, or 'tool_calls' without any, is brought to the port's rule."""
    url, script = server
    cut = [
        _event({"tool_calls": [_piece(0, id="c", name="f", arguments='{"a": 1, "b')]}),
        _event({}, "length"),
        "[DONE]",
    ]
    last = (await _stream_of(url, cut, script))[-1]
    assert (last.finish_reason, last.tool_calls) == ("length", ())
    says_stop = [
        _event({"tool_calls": [_piece(0, id="c", name="f", arguments="{}")]}),
        _event({}, "stop"),
        "[DONE]",
    ]
    last = (await _stream_of(url, says_stop, script))[-1]
    assert (last.finish_reason, last.tool_calls) == ("tool_calls", (ToolCall("c", "f", {}),))
    no_calls = [_event({"content": "hi"}, "tool_calls"), "[DONE]"]
    assert (await _stream_of(url, no_calls, script))[-1].finish_reason == "stop"
    script.stream_events = None
    script.body = {
        "choices": [
            {
                "message": {"tool_calls": [{"id": "c", "function": {"name": "f"}}]},
                "finish_reason": "length",
            }
        ]
    }
    llm = OpenAICompatibleLLM(url, "m")
    try:
        whole = await llm.complete(HI)
    finally:
        await llm.aclose()
    assert (whole.finish_reason, whole.tool_calls) == ("length", ())


@pytest.mark.parametrize("reason", ["content_filter", "function_call", "end_turn", "eos"])
async def test_a_finish_reason_outside_the_port_is_reported_as_stop(
    server: tuple[str, Script], reason: str
) -> None:
    """The port's finish reasons are stop, length and tool_calls: a provider's own reason
    (whole or streamed) is brought to stop, never passed through."""
    url, script = server
    events = [_event({"content": "hi"}), _event({}, reason), "[DONE]"]
    last = (await _stream_of(url, events, script))[-1]
    assert last.finish_reason == "stop", f"streamed {reason!r} came back as {last.finish_reason!r}"
    script.stream_events = None
    script.body = completion_body()
    script.body["choices"][0]["finish_reason"] = reason
    llm = OpenAICompatibleLLM(url, "m")
    try:
        whole = await llm.complete(HI)
    finally:
        await llm.aclose()
    assert (whole.text, whole.finish_reason) == ("hi there", "stop"), (
        f"{reason!r} came back as {whole.finish_reason!r}"
    )


async def test_sampling_options_sent_and_top_k_only_where_the_server_takes_it(
    server: tuple[str, Script],
) -> None:
    url, _ = server
    opts = CompletionOptions(temperature=0.7, top_p=0.9, top_k=40, seed=3)
    plain = OpenAICompatibleLLM(url, "m")
    with_top_k = OpenAICompatibleLLM.from_config(
        OpenAICompatibleLLMConfig(base_url=url, model="m", send_top_k=True)
    )
    try:
        await plain.complete(HI, opts)
        await with_top_k.complete(HI, opts)
        await plain.complete(HI)
    finally:
        await plain.aclose()
        await with_top_k.aclose()
    _, script = server
    sent, sent_top_k, defaults = script.seen
    assert (sent["temperature"], sent["top_p"], sent["seed"]) == (0.7, 0.9, 3)
    assert "top_k" not in sent, "OpenAI rejects top_k: dropped unless the config sends it"
    assert sent_top_k["top_k"] == 40
    assert not {"top_p", "top_k", "seed"} & defaults.keys(), "defaults are not sent"


@pytest.mark.parametrize(
    ("opts", "field"),
    [
        (CompletionOptions(top_p=0.0), "top_p"),
        (CompletionOptions(top_p=1.5), "top_p"),
        (CompletionOptions(top_k=-1), "top_k"),
    ],
    ids=["top_p=0", "top_p>1", "top_k<0"],
)
async def test_sampling_options_out_of_range_are_refused_before_any_request(
    server: tuple[str, Script], opts: CompletionOptions, field: str
) -> None:
    url, script = server
    llm = OpenAICompatibleLLM(url, "m")
    try:
        with pytest.raises(InvalidInputError) as info:
            await llm.complete(HI, opts)
        with pytest.raises(InvalidInputError):
            _ = [c async for c in llm.stream(HI, opts)]
    finally:
        await llm.aclose()
    assert info.value.field == field
    assert script.seen == []


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
            if body.get("tools") and body.get("stream"):  # call the first tool, in pieces
                name = body["tools"][0]["function"]["name"]
                arguments = json.dumps({"word": words[-1] if words else ""})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i in range(0, len(arguments), 3):
                    piece: dict[str, Any] = {"index": 0, "function": {"arguments": ""}}
                    if i == 0:
                        piece.update(id="call_1", type="function")
                        piece["function"]["name"] = name
                    piece["function"]["arguments"] = arguments[i : i + 3]
                    event = {"choices": [{"delta": {"tool_calls": [piece]}}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                end = {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
                return
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
