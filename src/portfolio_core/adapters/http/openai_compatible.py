"""An LLM over any OpenAI-compatible chat completions endpoint (httpx, async).

Works with servers that implement ``POST {base_url}/chat/completions`` (vLLM, llama.cpp
server, Ollama, LM Studio, hosted APIs). Streaming uses server-sent events with
``stream_options.include_usage``; when a server reports no usage, the adapter falls back
to [estimate_tokens][portfolio_core.ports.estimate_tokens] so ``usage`` is always set.

Tool calls: a stream's tool-call deltas (``delta.tool_calls[i]``: an ``index``, the ``id``
and ``function.name`` in the first piece, ``function.arguments`` in string fragments) are
assembled, and the last chunk carries the whole calls, as ``complete`` returns them. A
piece without an ``index`` continues the call with its ``id`` (or the last call begun,
when it has no ``id`` either). Pieces that do not fit together -- a negative index, a
continuation of no call, a call whose id or name changes, arguments sent both as an object
and as text, a call that never gets a name -- raise `UnavailableError` naming the call.
Arguments that are not a JSON object are kept, not dropped: ``{"_raw": text}`` for text
that is not JSON, ``{"_value": value}`` for JSON that is not an object. ``finish_reason``
is ``"tool_calls"`` exactly when calls were returned; a call cut by ``max_tokens``
(``finish_reason`` ``"length"``) is not returned, since its arguments are incomplete. Any
other reason the server gives (``content_filter``, ``function_call`` without calls, a
vendor's own) is reported as ``"stop"``, the port's only other value.

Sampling: ``temperature`` is always sent; ``top_p`` is sent when it is not 1 (its default in
every such API) and ``seed`` when it is set -- the OpenAI API and the servers above take
both. ``top_k`` is not part of the OpenAI API, which rejects unknown arguments (HTTP 400),
so it is dropped unless the config sets ``send_top_k`` (vLLM, the llama.cpp server, LM
Studio and Ollama's OpenAI endpoint accept it). ``seed`` makes a provider's sampling
repeatable only where the provider promises it (OpenAI calls it best effort). Options out
of range (``top_p`` outside ``(0, 1]``, a negative ``top_k``) raise `InvalidInputError`
before any request.

Errors are translated: 429 -> `RateLimitedError` (``retry_after`` from the
``Retry-After`` header, seconds or HTTP date), 408 and client timeouts ->
`PortTimeoutError`, 5xx and connection failures -> `UnavailableError`, other
4xx -> `InvalidInputError`.

The server is not trusted:

* every call has a total deadline -- ``timeout`` seconds for ``complete`` and ``ping``,
  ``stream_timeout`` for a whole ``stream`` -- however slowly the server trickles bytes
  (`PortTimeoutError`);
* a response is validated (pydantic) before it is read; a body of the wrong shape, an
  invalid stream event, a body or stream larger than ``max_response_bytes``, and a stream
  that ends before ``[DONE]`` or a ``finish_reason`` all raise `UnavailableError`
  (a provider failure, so a router falls back to its next provider) -- a cut stream is
  never returned as complete;
* the API key and the values of configured headers are secrets: they are sent only in
  headers, and scrubbed -- whole or any 8-character piece of them -- from every text the
  adapter lets out (error messages carry at most 300 characters of an error body, after
  scrubbing), as are the user and password of a ``base_url``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from portfolio_core.ports import (
    Completion,
    CompletionChunk,
    CompletionOptions,
    InvalidInputError,
    LLMCapability,
    Message,
    PortError,
    PortTimeoutError,
    RateLimitedError,
    ToolCall,
    UnavailableError,
    Usage,
    declare,
    estimate_tokens,
)

__all__ = ["OpenAICompatibleLLM", "OpenAICompatibleLLMConfig"]

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_ERROR_DETAIL = 300
_ERROR_READ = 64 * 1024
_FRAGMENT = 8  # a piece of a secret this long is scrubbed too


class OpenAICompatibleLLMConfig(BaseModel):
    """Manifest config of `OpenAICompatibleLLM`."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    """e.g. ``http://127.0.0.1:8000/v1``."""
    model: str
    api_key: SecretStr | None = None
    timeout: float = Field(default=60.0, gt=0)
    """Total seconds for one ``complete`` or ``ping``, however the server trickles."""
    stream_timeout: float = Field(default=300.0, gt=0)
    """Total seconds for one whole ``stream``."""
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, gt=0)
    """Largest body (or whole stream) accepted."""
    headers: dict[str, str] = Field(default_factory=dict)
    send_top_k: bool = False
    """Send ``top_k`` (servers such as vLLM and llama.cpp accept it; OpenAI rejects it)."""


# -- what a server may answer (validated before use) ----------------------------------------


class _Function(BaseModel):
    name: str = ""
    arguments: str | dict[str, Any] | None = None


class _ToolCallBody(BaseModel):
    id: str | None = None
    function: _Function = Field(default_factory=_Function)


class _MessageBody(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCallBody] | None = None


class _Choice(BaseModel):
    message: _MessageBody | None = None
    finish_reason: str | None = None


class _CompletionBody(BaseModel):
    choices: list[_Choice] = Field(min_length=1)
    model: str | None = None
    usage: dict[str, Any] | None = None


class _FunctionDelta(BaseModel):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class _ToolCallDelta(BaseModel):
    index: int | None = None
    id: str | None = None
    function: _FunctionDelta | None = None


class _Delta(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _StreamChoice(BaseModel):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _StreamEvent(BaseModel):
    choices: list[_StreamChoice] | None = None
    usage: dict[str, Any] | None = None


def _message_json(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name is not None and m.role != "tool":
        out["name"] = m.name
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
            }
            for c in m.tool_calls
        ]
    return out


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _parse_arguments(raw: object) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            return {"_raw": raw}
        return parsed if isinstance(parsed, dict) else {"_value": parsed}
    return {}


class _PartialCall:
    """One tool call being assembled from stream pieces."""

    __slots__ = ("arguments", "id", "name", "whole")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.arguments: list[str] = []
        self.whole: dict[str, Any] | None = None


class _ToolCallAssembly:
    """Assembles streamed tool-call deltas into whole calls; ``problem`` makes the error."""

    def __init__(self, problem: Callable[[str], PortError]) -> None:
        self._problem = problem
        self._calls: dict[int, _PartialCall] = {}
        self._last: int | None = None

    def _slot(self, piece: _ToolCallDelta) -> int:
        if piece.index is not None:
            if piece.index < 0:
                raise self._problem(f"sent a tool-call piece with a negative index ({piece.index})")
            return piece.index
        if piece.id:
            for index, call in self._calls.items():
                if call.id == piece.id:
                    return index
            return max(self._calls, default=-1) + 1
        if self._last is None:
            raise self._problem("sent a tool-call piece with no index or id before any call began")
        return self._last

    def add(self, piece: _ToolCallDelta) -> None:
        index = self._slot(piece)
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = _PartialCall()
        self._last = index
        if piece.id:
            if call.id is not None and call.id != piece.id:
                raise self._problem(
                    f"changed the id of tool call {index} from {call.id!r} to {piece.id!r}"
                )
            call.id = piece.id
        function = piece.function
        if function is None:
            return
        if function.name:
            if call.name and call.name != function.name:
                raise self._problem(
                    f"changed the name of tool call {index} from {call.name!r} to {function.name!r}"
                )
            call.name = function.name
        arguments = function.arguments
        if isinstance(arguments, dict):
            if call.whole is not None or "".join(call.arguments).strip():
                raise self._problem(
                    f"sent the arguments of tool call {index} both as an object and in pieces"
                )
            call.whole = arguments
        elif arguments:
            if call.whole is not None:
                raise self._problem(
                    f"sent the arguments of tool call {index} both as an object and in pieces"
                )
            call.arguments.append(arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        """The assembled calls in index order; raises when one never got a name."""
        out: list[ToolCall] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.name:
                raise self._problem(f"sent tool call {index} without a function name")
            raw = call.whole if call.whole is not None else "".join(call.arguments)
            out.append(ToolCall(call.id or f"call_{index}", call.name, _parse_arguments(raw)))
        return tuple(out)


def _settle(finish: str | None, calls: tuple[ToolCall, ...]) -> tuple[str, tuple[ToolCall, ...]]:
    """The port's finish reason and calls: ``tool_calls`` exactly when calls are returned,
    calls cut by ``max_tokens`` are not returned, and any other reason a provider gives
    (``content_filter``, ``function_call``, ``end_turn``, ...) is the port's ``stop``."""
    if finish == "length":
        return "length", ()
    if calls:
        return "tool_calls", calls
    return "stop", ()


def _without_credentials(url: str) -> str:
    """``url`` without a user or password (for messages and reprs)."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "<base_url>"


class _Scrubber:
    """Removes known secrets, whole or any ``_FRAGMENT``-character piece, from text."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pieces = {
            s[i : i + _FRAGMENT]
            for s in self._secrets
            if len(s) >= _FRAGMENT
            for i in range(len(s) - _FRAGMENT + 1)
        }

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if not self._pieces or len(text) < _FRAGMENT:
            return text
        hidden = bytearray(len(text))
        for i in range(len(text) - _FRAGMENT + 1):
            if text[i : i + _FRAGMENT] in self._pieces:
                hidden[i : i + _FRAGMENT] = b"\x01" * _FRAGMENT
        if not any(hidden):
            return text
        out: list[str] = []
        for i, c in enumerate(text):
            if not hidden[i]:
                out.append(c)
            elif i == 0 or not hidden[i - 1]:
                out.append("***")
        return "".join(out)


class OpenAICompatibleLLM:
    """Chat completions over HTTP; see the module docstring.

    Pass ``client`` to share an ``httpx.AsyncClient`` (the adapter then does not close it).
    """

    config_model: ClassVar[type[BaseModel]] = OpenAICompatibleLLMConfig
    capabilities: ClassVar[frozenset[str]] = declare(LLMCapability.STREAMING, LLMCapability.TOOLS)

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: SecretStr | str | None = None,
        timeout: float = 60.0,
        stream_timeout: float = 300.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | None = None,
        send_top_k: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url:
            raise InvalidInputError("base_url is required", field="base_url")
        for name, value in (("timeout", timeout), ("stream_timeout", stream_timeout)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidInputError(f"{name} must be a positive number", field=name)
        if max_response_bytes <= 0:
            raise InvalidInputError(
                "max_response_bytes must be positive", field="max_response_bytes"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self.timeout = float(timeout)
        self.stream_timeout = float(stream_timeout)
        self.max_response_bytes = max_response_bytes
        self._headers = dict(headers or {})
        self.send_top_k = send_top_k
        self._client = client
        self._owns_client = client is None
        parts = urlsplit(self.base_url)
        self._where = _without_credentials(self.base_url)
        self._scrub = _Scrubber(
            [
                self._api_key.get_secret_value() if self._api_key is not None else "",
                *self._headers.values(),
                parts.password or "",
                parts.username or "",
            ]
        )

    @classmethod
    def from_config(cls, config: OpenAICompatibleLLMConfig) -> Self:
        """Build from a manifest config; takes no other adapters."""
        return cls(
            config.base_url,
            config.model,
            api_key=config.api_key,
            timeout=config.timeout,
            stream_timeout=config.stream_timeout,
            max_response_bytes=config.max_response_bytes,
            headers=config.headers,
            send_top_k=config.send_top_k,
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key is not None else "none"
        return f"OpenAICompatibleLLM(base_url={self._where!r}, model={self.model!r}, api_key={key})"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = dict(self._headers)
            if self._api_key is not None:
                headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
            self._client = httpx.AsyncClient(headers=headers, timeout=self.timeout)
        return self._client

    async def start(self) -> None:
        """Open the HTTP connection pool (also opened lazily on first use)."""
        self._http()

    async def aclose(self) -> None:
        """Close the connection pool if this adapter opened it. Idempotent."""
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.aclose()

    def _body(
        self, messages: Sequence[Message], opts: CompletionOptions, stream: bool
    ) -> dict[str, Any]:
        if not messages:
            raise InvalidInputError("the conversation is empty", field="messages")
        opts.check()
        body: dict[str, Any] = {
            "model": opts.model or self.model,
            "messages": [_message_json(m) for m in messages],
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
        }
        if opts.top_p != 1.0:
            body["top_p"] = opts.top_p
        if opts.top_k and self.send_top_k:
            body["top_k"] = opts.top_k
        if opts.stop:
            body["stop"] = list(opts.stop)
        if opts.seed is not None:
            body["seed"] = opts.seed
        if opts.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters) or {"type": "object", "properties": {}},
                    },
                }
                for t in opts.tools
            ]
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    # -- what leaves the adapter ----------------------------------------------------------

    def _error(self, status: int, raw: bytes, headers: httpx.Headers) -> PortError:
        text = self._scrub(raw[:_ERROR_READ].decode("utf-8", errors="replace"))
        detail = self._scrub(text[:_ERROR_DETAIL].strip())
        where = self._scrub(f"{self._where} ({self.model})")
        if status == 429:
            return RateLimitedError(
                f"rate limited by {where}: {detail}",
                retry_after=_retry_after(headers.get("retry-after")),
                port="LLM",
            )
        if status == 408:
            return PortTimeoutError(f"{where} timed out the request: {detail}", port="LLM")
        if status >= 500:
            return UnavailableError(
                f"{where} failed with HTTP {status}: {detail}",
                retry_after=_retry_after(headers.get("retry-after")),
                port="LLM",
            )
        return InvalidInputError(
            f"{where} rejected the request (HTTP {status}): {detail}", port="LLM"
        )

    def _malformed(self, what: str) -> UnavailableError:
        return UnavailableError(f"{self._where} {what}", port="LLM")

    def _transport_error(self, exc: BaseException, timeout: float) -> PortError:
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            return PortTimeoutError(
                f"{self._where} did not answer within {timeout}s", timeout=timeout, port="LLM"
            )
        return UnavailableError(f"cannot reach {self._where}: {type(exc).__name__}", port="LLM")

    async def _read_capped(self, response: httpx.Response, cap: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise self._malformed(f"sent a body larger than {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _exchange(self, method: str, path: str, body: dict[str, Any] | None) -> bytes:
        """Send one request within ``timeout`` and return its (capped) body; errors mapped."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self._http().stream(
                    method, f"{self.base_url}{path}", json=body
                ) as response:
                    if response.status_code >= 400:
                        raw = await self._read_capped(response, _ERROR_READ)
                        raise self._error(response.status_code, raw, response.headers)
                    return await self._read_capped(response, self.max_response_bytes)
        except PortError:
            raise
        except (httpx.HTTPError, TimeoutError) as exc:
            raise self._transport_error(exc, self.timeout) from None

    # -- the port -------------------------------------------------------------------------

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        """POST a chat completion and return it with usage; errors as in the module docstring."""
        opts = opts or CompletionOptions()
        body = self._body(messages, opts, stream=False)
        raw = await self._exchange("POST", "/chat/completions", body)
        try:
            data = _CompletionBody.model_validate_json(raw)
        except ValidationError as exc:
            raise self._malformed(
                f"returned a malformed completion ({exc.error_count()} problems)"
            ) from None
        choice = data.choices[0]
        message = choice.message or _MessageBody()
        text = message.content or ""
        calls = tuple(
            ToolCall(
                c.id or f"call_{i}",
                c.function.name,
                _parse_arguments(c.function.arguments),
            )
            for i, c in enumerate(message.tool_calls or ())
        )
        usage = self._usage(data.usage, messages, text)
        finish, calls = _settle(choice.finish_reason, calls)
        return Completion(text, data.model or str(body["model"]), usage, finish, calls)

    @staticmethod
    def _usage(raw: object, messages: Sequence[Message], text: str) -> Usage:
        if isinstance(raw, Mapping):
            prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
            if type(prompt) is int and type(completion) is int and prompt >= 0 and completion >= 0:
                return Usage(prompt, completion)
        return Usage(estimate_tokens(messages), max(1, int(len(text) / 4 + 0.999)))

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        """Stream the completion over SSE; the last chunk carries finish_reason and usage.

        The whole stream must end within ``stream_timeout`` seconds and ``max_response_bytes``
        bytes; a stream that ends before ``[DONE]`` or a ``finish_reason`` raises
        UnavailableError after the chunks already received."""
        opts = opts or CompletionOptions()
        body = self._body(messages, opts, stream=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stream_timeout
        text_parts: list[str] = []
        assembly = _ToolCallAssembly(self._malformed)
        finish: str | None = None
        usage_raw: object = None
        done = False
        lines: AsyncIterator[str] | None = None
        try:
            async with asyncio.timeout_at(deadline):
                context = self._http().stream(
                    "POST", f"{self.base_url}/chat/completions", json=body
                )
                response = await context.__aenter__()
            try:
                if response.status_code >= 400:
                    async with asyncio.timeout_at(deadline):
                        raw = await self._read_capped(response, _ERROR_READ)
                    raise self._error(response.status_code, raw, response.headers)
                lines = self._lines(response)
                while not done:
                    async with asyncio.timeout_at(deadline):
                        line = await anext(lines, None)
                    if line is None:
                        break
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    try:
                        event = _StreamEvent.model_validate_json(payload)
                    except ValidationError:
                        raise self._malformed("sent a malformed stream event") from None
                    if event.usage:
                        usage_raw = event.usage
                    for choice in event.choices or ():
                        piece = (choice.delta.content if choice.delta else None) or ""
                        for call_piece in (choice.delta.tool_calls if choice.delta else None) or ():
                            assembly.add(call_piece)
                        if choice.finish_reason:
                            finish = choice.finish_reason
                        if piece:
                            text_parts.append(piece)
                            yield CompletionChunk(piece)
            finally:
                if lines is not None:
                    await lines.aclose()  # type: ignore[attr-defined]
                await context.__aexit__(None, None, None)
        except PortError:
            raise
        except (httpx.HTTPError, TimeoutError) as exc:
            raise self._transport_error(exc, self.stream_timeout) from None
        if not done and finish is None:
            raise self._malformed(
                "ended the stream before [DONE] or a finish_reason: the completion is cut"
            )
        usage = self._usage(usage_raw, messages, "".join(text_parts))
        finish, calls = _settle(finish, assembly.calls())
        yield CompletionChunk("", finish, usage, calls)

    async def _lines(self, response: httpx.Response) -> AsyncIterator[str]:
        """Lines of the body, refusing more than ``max_response_bytes`` in all."""
        cap = self.max_response_bytes
        size = 0
        buffer = b""
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise self._malformed(f"sent a stream larger than {cap} bytes")
            buffer += chunk
            *whole, buffer = buffer.split(b"\n")
            for line in whole:
                yield line.rstrip(b"\r").decode("utf-8", errors="replace")
        if buffer:
            yield buffer.rstrip(b"\r").decode("utf-8", errors="replace")

    async def ping(self) -> None:
        """GET ``{base_url}/models`` within ``timeout``; raises the translated error when the
        server is unwell."""
        await self._exchange("GET", "/models", None)
