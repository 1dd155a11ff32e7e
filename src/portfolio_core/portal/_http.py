"""The HTTP side of the portal: one generic endpoint for every method of every served entry.

``POST /v1/entries/{entry}/{method}`` with a JSON object of arguments answers with the JSON
result (``CALL``) or with one JSON document per line (``ITERATE``: ``{"item": ...}`` lines, then
``{"end": true}`` or ``{"error": <problem>}``; ``Accept: text/event-stream`` gives the same as
server-sent events). Every failure is an ``application/problem+json`` response.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import pydantic
import structlog

from portfolio_core.portal._dispatch import Bound, invalid_arguments
from portfolio_core.ports.errors import InvalidInputError, PortError, UnsupportedError
from portfolio_core.ports.tenant import TenantContext, reset_current_tenant, set_current_tenant
from portfolio_core.wire import (
    JSONL_MEDIA_TYPE,
    PROBLEM_MEDIA_TYPE,
    CallKind,
    decode_tenant,
    dumps,
    problem_for,
)

if TYPE_CHECKING:
    from portfolio_core.portal._app import Portal

__all__ = ["RpcEndpoint", "json_too_deep", "read_body", "send_json", "send_problem"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_log = structlog.get_logger("portfolio_core.portal")
_JSON = b"application/json"


class BodyTooLarge(InvalidInputError):
    """The request body is larger than the portal accepts (413)."""


class ClientGone(Exception):
    """The client disconnected before its request was read."""


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether the JSON text nests arrays/objects deeper than ``limit`` (strings skipped).

    The brackets outside strings are kept and innermost pairs removed pass by pass (each pass
    in C): the text nests deeper than ``limit`` exactly when brackets remain after ``limit``
    passes. Malformed text is left for the parser to refuse.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRINGS.sub(b"", body).translate(_SQUARE, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return False  # unbalanced: not JSON, the parser says so
        brackets = shorter
    return bool(brackets)


async def read_body(receive: Receive, limit: int, declared: int | None) -> bytes:
    """The whole request body; raises BodyTooLarge past ``limit`` bytes, ClientGone."""
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"the request body is larger than {limit} bytes", field="body")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes", field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = _JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    start = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        start.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


async def send_problem(send: Send, exc: BaseException, status: int | None = None) -> str:
    """Answer with the problem of ``exc``; returns the problem type's slug (for metrics)."""
    problem = problem_for(exc, status)
    headers: list[tuple[bytes, bytes]] = []
    retry_after = problem.get("retry_after")
    if isinstance(retry_after, int | float):
        headers.append((b"retry-after", str(max(1, int(retry_after + 0.999))).encode()))
    if problem["status"] == 401:
        headers.append((b"www-authenticate", b'Bearer realm="portfolio-core"'))
    await send_json(send, problem["status"], dumps(problem), PROBLEM_MEDIA_TYPE.encode(), headers)
    return str(problem["type"]).rsplit(":", 1)[-1]


def parse_arguments(bound: Bound, body: bytes, max_depth: int) -> dict[str, Any]:
    """The validated keyword arguments of one call (raises InvalidInputError)."""
    if not body.strip():
        body = b"{}"
    if json_too_deep(body, max_depth):
        raise InvalidInputError(f"the JSON nests deeper than {max_depth} levels", field="body")
    try:
        args: dict[str, Any] = bound.validator.validate_json(body, strict=True)
    except pydantic.ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
            raise InvalidInputError("the request body is not valid JSON", field="body") from None
        raise invalid_arguments(bound.spec, exc) from None
    return args


class RpcEndpoint:
    """ASGI endpoint of ``POST /v1/entries/{entry}/{method}``."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        portal = self.portal
        params = scope["path_params"]
        authorization = api_key = tenant = accept = None
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                api_key = value
            elif name == b"x-portfolio-tenant":
                tenant = value
            elif name == b"content-length":
                with contextlib.suppress(ValueError):
                    declared = int(value)
            elif name == b"accept":
                accept = value
        started = time.perf_counter()
        bound: Bound | None = None
        try:
            principal = portal.security.authenticate(authorization, api_key)
            bound = portal.prepare(principal, params["entry"], params["method"])
            await portal.security.admit(principal)
            body = await read_body(receive, portal.config.limits.max_body_bytes, declared)
            args = parse_arguments(bound, body, portal.config.limits.max_json_depth)
            ctx = decode_tenant(tenant) if tenant else None
        except ClientGone:
            return
        except BaseException as exc:
            slug = await send_problem(send, exc, 413 if isinstance(exc, BodyTooLarge) else None)
            if bound is not None:
                portal.metrics.record(bound, time.perf_counter() - started, slug)
            else:
                portal.metrics.refused.labels(slug).inc()
            if not isinstance(exc, Exception):
                raise
            return
        kind = bound.spec.kind
        if kind is CallKind.CALL:
            await self._call(bound, args, ctx, send, started)
        elif kind is CallKind.ITERATE:
            sse = accept is not None and b"text/event-stream" in accept
            await self._iterate(bound, args, ctx, receive, send, sse, started)
        else:
            refused = UnsupportedError(
                f"{bound.spec.name}() keeps a handler in the caller: subscribe over the "
                "WebSocket endpoint /v1/ws"
            )
            portal.metrics.record(bound, 0.0, await send_problem(send, refused))

    async def _call(
        self,
        bound: Bound,
        args: dict[str, Any],
        ctx: TenantContext | None,
        send: Send,
        started: float,
    ) -> None:
        portal = self.portal
        token = set_current_tenant(ctx) if ctx is not None else None
        try:
            result = await bound.call(**args)
            body = dumps(result)
        except Exception as exc:
            if not isinstance(exc, PortError):
                _log.error(
                    "portal call failed",
                    entry=bound.entry,
                    method=bound.spec.name,
                    exc_info=exc,
                )
            slug = await send_problem(send, exc)
            portal.metrics.record(bound, time.perf_counter() - started, slug)
            return
        finally:
            if token is not None:
                reset_current_tenant(token)
        await send_json(send, 200, body)
        portal.metrics.record(bound, time.perf_counter() - started, None)

    async def _iterate(
        self,
        bound: Bound,
        args: dict[str, Any],
        ctx: TenantContext | None,
        receive: Receive,
        send: Send,
        sse: bool,
        started: float,
    ) -> None:
        portal = self.portal
        content_type = b"text/event-stream" if sse else JSONL_MEDIA_TYPE.encode()

        def frame(kind: str, value: Any) -> bytes:
            if sse:
                return b"event: " + kind.encode() + b"\ndata: " + dumps(value) + b"\n\n"
            return dumps({kind: value}) + b"\n"

        async def pump() -> None:
            token = set_current_tenant(ctx) if ctx is not None else None
            iterator: AsyncIterator[Any] | None = None
            try:
                try:
                    iterator = bound.call(**args)
                    first = await anext(iterator)
                except StopAsyncIteration:
                    first = _END
                except Exception as exc:
                    if not isinstance(exc, PortError):
                        _log.error("portal iteration failed", entry=bound.entry, exc_info=exc)
                    slug = await send_problem(send, exc)
                    portal.metrics.record(bound, time.perf_counter() - started, slug)
                    return
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", content_type),
                            (b"cache-control", b"no-store"),
                        ],
                    }
                )
                portal.metrics.record(bound, time.perf_counter() - started, None)
                final: bytes
                try:
                    item = first
                    while item is not _END:
                        await send(
                            {
                                "type": "http.response.body",
                                "body": frame("item", item),
                                "more_body": True,
                            }
                        )
                        try:
                            item = await anext(iterator)  # type: ignore[arg-type]
                        except StopAsyncIteration:
                            item = _END
                    final = frame("end", True)
                except Exception as exc:
                    if not isinstance(exc, PortError):
                        _log.error("portal iteration failed", entry=bound.entry, exc_info=exc)
                    final = frame("error", problem_for(exc))
                await send({"type": "http.response.body", "body": final, "more_body": False})
            finally:
                if iterator is not None:
                    closer = getattr(iterator, "aclose", None)
                    if closer is not None:
                        with contextlib.suppress(Exception):
                            await closer()
                if token is not None:
                    reset_current_tenant(token)

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        portal.metrics.channels.inc()
        pumping = asyncio.ensure_future(pump())
        watching = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pumping, watching):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            portal.metrics.channels.dec()


_END = object()
