"""``POST /v1/chat/completions`` and ``GET /v1/models``: any LLM entry behind the OpenAI API.

Existing OpenAI clients (the ``openai`` SDK, LangChain, curl) talk to a served LLM entry, a
router seen as an LLM, or the local engine, streamed (server-sent events, ending with
``data: [DONE]``) or not. The request's ``model`` names the entry (or a name configured in
``portal.openai.models``). Credentials and scopes are the portal's: a key needs ``complete``
(or ``stream``) on the entry. Errors use OpenAI's error body (``{"error": {...}}``) with the
status code of the port error's problem type, so the SDK raises its matching exception.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from portfolio_core.portal._http import BodyTooLarge, json_too_deep
from portfolio_core.ports.errors import InvalidInputError, NotFoundError, PortError
from portfolio_core.ports.llm import CompletionOptions, Message, ToolCall, ToolSpec
from portfolio_core.wire import problem_for

if TYPE_CHECKING:
    from portfolio_core.portal._app import Portal

__all__ = ["openai_routes"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _FunctionCall(_Model):
    name: str
    arguments: str = "{}"


class _ToolCallIn(_Model):
    id: str
    type: Literal["function"] = "function"
    function: _FunctionCall


class _MessageIn(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[_ToolCallIn] = Field(default_factory=list)


class _Function(_Model):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class _Tool(_Model):
    type: Literal["function"] = "function"
    function: _Function


class _StreamOptions(_Model):
    include_usage: bool = False


class ChatRequest(_Model):
    """The subset of OpenAI's chat completion request the portal honours."""

    model: str
    messages: list[_MessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    #: not in OpenAI's API; vLLM and the llama.cpp server take it, and so does this portal
    top_k: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    tools: list[_Tool] = Field(default_factory=list)
    n: int = Field(default=1, ge=1, le=1)


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise InvalidInputError("only text content parts are supported", field="messages")
        parts.append(part["text"])
    return "".join(parts)


def _messages(request: ChatRequest) -> list[Message]:
    out = []
    for m in request.messages:
        calls = []
        for call in m.tool_calls:
            try:
                arguments = json.loads(call.function.arguments or "{}")
            except ValueError:
                raise InvalidInputError(
                    "tool call arguments must be a JSON object", field="messages"
                ) from None
            if not isinstance(arguments, dict):
                raise InvalidInputError(
                    "tool call arguments must be a JSON object", field="messages"
                )
            calls.append(ToolCall(call.id, call.function.name, arguments))
        role = "system" if m.role == "developer" else m.role
        out.append(Message(role, _text(m.content), m.name, m.tool_call_id, tuple(calls)))
    return out


def _options(request: ChatRequest) -> CompletionOptions:
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    max_tokens = request.max_completion_tokens or request.max_tokens or 256
    return CompletionOptions(
        model=None,
        max_tokens=max_tokens,
        temperature=request.temperature if request.temperature is not None else 0.0,
        top_p=request.top_p if request.top_p is not None else 1.0,
        top_k=request.top_k or 0,
        stop=stop,
        tools=tuple(
            ToolSpec(t.function.name, t.function.description, t.function.parameters)
            for t in request.tools
        ),
        seed=request.seed,
    )


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def _error(exc: BaseException, status: int | None = None) -> JSONResponse:
    problem = problem_for(exc, status)
    code = int(problem["status"])
    slug = str(problem["type"]).rsplit(":", 1)[-1]
    body = {
        "error": {
            "message": problem.get("detail", "error"),
            "type": _ERROR_TYPES.get(
                code, "server_error" if code >= 500 else "invalid_request_error"
            ),
            "param": problem.get("field"),
            "code": slug,
        }
    }
    headers = {}
    retry_after = problem.get("retry_after")
    if isinstance(retry_after, int | float):
        headers["retry-after"] = str(max(1, int(retry_after + 0.999)))
    return JSONResponse(body, code, headers=headers)


def _tool_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
        }
        for c in calls
    ]


class _ChatCompletions:
    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def _entries(self) -> dict[str, str]:
        configured = self.portal.config.openai.models
        if configured:
            return dict(configured)
        served = self.portal.dispatcher
        return {n: n for n in served.names() if served.entry(n).port.key == "llm"}

    async def models(self, request: Request) -> Response:
        try:
            principal = self.portal._principal(request)
        except PortError as exc:
            return _error(exc)
        created = int(time.time())
        data = [
            {"id": model, "object": "model", "created": created, "owned_by": "portfolio-core"}
            for model, entry in self._entries().items()
            if principal.sees(entry)
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(self, request: Request) -> Response:
        portal = self.portal
        limits = portal.config.limits
        try:
            principal = portal._principal(request)
            declared = request.headers.get("content-length")
            if (
                declared is not None
                and declared.isdigit()
                and int(declared) > limits.max_body_bytes
            ):
                raise BodyTooLarge(
                    f"the request body is larger than {limits.max_body_bytes} bytes", field="body"
                )
            body = b""
            async for part in request.stream():
                body += part
                if len(body) > limits.max_body_bytes:
                    raise BodyTooLarge(
                        f"the request body is larger than {limits.max_body_bytes} bytes",
                        field="body",
                    )
            if json_too_deep(body, limits.max_json_depth):
                raise InvalidInputError(
                    f"the JSON nests deeper than {limits.max_json_depth} levels", field="body"
                )
            try:
                chat = ChatRequest.model_validate_json(body)
            except pydantic.ValidationError as exc:
                wrong = exc.errors(include_url=False, include_input=False)[0]
                raise InvalidInputError(
                    f"{'.'.join(map(str, wrong['loc']))}: {wrong['msg']}",
                    field=str(wrong["loc"][0]) if wrong["loc"] else None,
                ) from None
            entry = self._entries().get(chat.model)
            if entry is None:
                raise NotFoundError(f"the model {chat.model!r} does not exist", key=chat.model)
            method = "stream" if chat.stream else "complete"
            bound = portal.prepare(principal, entry, method)
            await portal.security.admit(principal)
            messages = _messages(chat)
            opts = _options(chat)
        except PortError as exc:
            return _error(exc, 413 if isinstance(exc, BodyTooLarge) else None)
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not chat.stream:
            started = time.perf_counter()
            try:
                completion = await bound.call(messages, opts)
            except PortError as exc:
                portal.metrics.record(bound, time.perf_counter() - started, "error")
                return _error(exc)
            portal.metrics.record(bound, time.perf_counter() - started, None)
            message: dict[str, Any] = {"role": "assistant", "content": completion.text}
            if completion.tool_calls:
                message["tool_calls"] = _tool_calls(completion.tool_calls)
            return JSONResponse(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": chat.model,
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": completion.finish_reason}
                    ],
                    "usage": {
                        "prompt_tokens": completion.usage.input_tokens,
                        "completion_tokens": completion.usage.output_tokens,
                        "total_tokens": completion.usage.total_tokens,
                    },
                }
            )
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        iterator: AsyncIterator[Any] = bound.call(messages, opts)
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            first = None
        except PortError as exc:
            return _error(exc)

        def chunk(delta: dict[str, Any], finish: str | None, usage: Any = None) -> bytes:
            body: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": chat.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage is not None:
                body["choices"] = []
                body["usage"] = usage
            return b"data: " + json.dumps(body).encode() + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            portal.metrics.channels.inc()
            try:
                yield chunk({"role": "assistant", "content": ""}, None)
                piece = first
                usage = None
                while piece is not None:
                    if piece.text:
                        yield chunk({"content": piece.text}, None)
                    if piece.tool_calls:
                        calls = _tool_calls(piece.tool_calls)
                        yield chunk(
                            {"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]}, None
                        )
                    if piece.finish_reason is not None:
                        yield chunk({}, piece.finish_reason)
                        usage = piece.usage
                    try:
                        piece = await anext(iterator)
                    except StopAsyncIteration:
                        piece = None
                if include_usage and usage is not None:
                    yield chunk(
                        {},
                        None,
                        {
                            "prompt_tokens": usage.input_tokens,
                            "completion_tokens": usage.output_tokens,
                            "total_tokens": usage.total_tokens,
                        },
                    )
                yield b"data: [DONE]\n\n"
            except PortError as exc:
                problem = problem_for(exc)
                error = {
                    "error": {
                        "message": problem.get("detail"),
                        "type": "server_error",
                        "code": str(problem["type"]).rsplit(":", 1)[-1],
                    }
                }
                yield b"data: " + json.dumps(error).encode() + b"\n\n"
            finally:
                closer = getattr(iterator, "aclose", None)
                if closer is not None:
                    with contextlib.suppress(Exception):
                        await closer()
                portal.metrics.channels.dec()

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-store"}
        )


def openai_routes(portal: Portal) -> list[BaseRoute]:
    """The OpenAI-compatible routes of ``portal``."""
    handler = _ChatCompletions(portal)
    return [
        Route("/v1/chat/completions", handler.chat, methods=["POST"]),
        Route("/v1/models", handler.models, methods=["GET"]),
    ]
