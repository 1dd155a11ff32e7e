"""An LLM over any OpenAI-compatible chat completions endpoint (httpx, async).

Works with servers that implement ``POST {base_url}/chat/completions`` (vLLM, llama.cpp
server, Ollama, LM Studio, hosted APIs). Streaming uses server-sent events with
``stream_options.include_usage``; when a server reports no usage, the adapter falls back
to :func:`~portfolio_core.ports.estimate_tokens` so ``usage`` is always set. Streamed
chunks carry text only: tool-call deltas in a stream are not assembled (use ``complete``
for tool calling).

Errors are translated: 429 -> :class:`RateLimitedError` (``retry_after`` from the
``Retry-After`` header, seconds or HTTP date), 408 and client timeouts ->
:class:`PortTimeoutError`, 5xx and connection failures -> :class:`UnavailableError`, other
4xx -> :class:`InvalidInputError`. The API key is a ``SecretStr``: it is sent only in the
``Authorization`` header and never appears in reprs, errors or logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

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


class OpenAICompatibleLLMConfig(BaseModel):
    """Manifest config of :class:`OpenAICompatibleLLM`."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    """e.g. ``http://127.0.0.1:8000/v1``."""
    model: str
    api_key: SecretStr | None = None
    timeout: float = Field(default=60.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


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
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _parse_arguments(raw: object) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return {"_raw": raw}
        return parsed if isinstance(parsed, dict) else {"_value": parsed}
    return {}


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
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url:
            raise InvalidInputError("base_url is required", field="base_url")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self.timeout = timeout
        self._headers = dict(headers or {})
        self._client = client
        self._owns_client = client is None

    @classmethod
    def from_config(cls, config: OpenAICompatibleLLMConfig) -> Self:
        """Build from a manifest config; takes no other adapters."""
        return cls(
            config.base_url,
            config.model,
            api_key=config.api_key,
            timeout=config.timeout,
            headers=config.headers,
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key is not None else "none"
        return (
            f"OpenAICompatibleLLM(base_url={self.base_url!r}, model={self.model!r}, api_key={key})"
        )

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
        if opts.max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        if opts.temperature < 0:
            raise InvalidInputError("temperature must not be negative", field="temperature")
        body: dict[str, Any] = {
            "model": opts.model or self.model,
            "messages": [_message_json(m) for m in messages],
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
        }
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

    def _error(self, status: int, text: str, headers: httpx.Headers) -> PortError:
        detail = text[:300].strip()
        where = f"{self.base_url} ({self.model})"
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

    def _transport_error(self, exc: httpx.HTTPError) -> PortError:
        if isinstance(exc, httpx.TimeoutException):
            return PortTimeoutError(
                f"{self.base_url} did not answer within {self.timeout}s",
                timeout=self.timeout,
                port="LLM",
            )
        return UnavailableError(f"cannot reach {self.base_url}: {type(exc).__name__}", port="LLM")

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        """POST a chat completion and return it with usage; errors as in the module docstring."""
        opts = opts or CompletionOptions()
        body = self._body(messages, opts, stream=False)
        try:
            response = await self._http().post(f"{self.base_url}/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise self._error(response.status_code, response.text, response.headers)
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UnavailableError(
                f"{self.base_url} returned a malformed completion", port="LLM"
            ) from exc
        text = message.get("content") or ""
        calls = tuple(
            ToolCall(
                str(c.get("id") or f"call_{i}"),
                str((c.get("function") or {}).get("name", "")),
                _parse_arguments((c.get("function") or {}).get("arguments")),
            )
            for i, c in enumerate(message.get("tool_calls") or ())
        )
        usage = self._usage(data.get("usage"), messages, text)
        finish = choice.get("finish_reason") or ("tool_calls" if calls else "stop")
        return Completion(text, str(data.get("model") or body["model"]), usage, finish, calls)

    @staticmethod
    def _usage(raw: object, messages: Sequence[Message], text: str) -> Usage:
        if isinstance(raw, Mapping):
            prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                return Usage(prompt, completion)
        return Usage(estimate_tokens(messages), max(1, int(len(text) / 4 + 0.999)))

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        """Stream the completion over SSE; the last chunk carries finish_reason and usage."""
        opts = opts or CompletionOptions()
        body = self._body(messages, opts, stream=True)
        text_parts: list[str] = []
        finish: str | None = None
        usage_raw: object = None
        try:
            async with self._http().stream(
                "POST", f"{self.base_url}/chat/completions", json=body
            ) as response:
                if response.status_code >= 400:
                    raw = await response.aread()
                    raise self._error(
                        response.status_code, raw.decode(errors="replace"), response.headers
                    )
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        event = json.loads(payload)
                    except json.JSONDecodeError as exc:
                        raise UnavailableError(
                            f"{self.base_url} sent a malformed stream event", port="LLM"
                        ) from exc
                    if event.get("usage"):
                        usage_raw = event["usage"]
                    for choice in event.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                        if piece:
                            text_parts.append(piece)
                            yield CompletionChunk(piece)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        usage = self._usage(usage_raw, messages, "".join(text_parts))
        yield CompletionChunk("", finish or "stop", usage)

    async def ping(self) -> None:
        """GET ``{base_url}/models``; raises the translated error when the server is unwell."""
        try:
            response = await self._http().get(f"{self.base_url}/models")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise self._error(response.status_code, response.text, response.headers)
