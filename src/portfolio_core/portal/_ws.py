"""The WebSocket side of the portal: JSON-RPC 2.0 over one connection, pipelined.

* A request ``{"jsonrpc": "2.0", "id": n, "method": "<entry>.<method>", "params": {...}}``
  calls a method; ``params`` may carry the caller's tenant as ``"@tenant"``. Requests may be
  sent one per frame or several in one array frame; each is answered on its own, as soon as
  it completes, and responses that complete together share one array frame (JSON-RPC batch
  responses are not held back until the whole batch is done).
* ``ITERATE`` and ``SUBSCRIBE`` methods open a channel named by the request id. Items are sent
  as ``portal.item`` notifications, only while the caller has credit: ``params["@credit"]``
  gives the initial credit and ``portal.credit`` notifications add more. The server asks the
  adapter for the next item only when it may send it, so a slow caller slows the adapter down
  instead of making the server buffer. A subscription is confirmed by ``portal.opened``. The
  channel's response (``{"end": true}`` or an error) comes when it ends; ``portal.cancel``
  ends it early (the response then comes after the adapter's iterator or subscription is
  closed).
* Errors are JSON-RPC errors whose ``data`` is the problem object (see ``wire``).
* Heartbeats are WebSocket pings, sent by the server (uvicorn's ``ws_ping_interval``) and by
  the remote adapter; a peer that stops answering is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

import pydantic
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from portfolio_core.portal._dispatch import Bound, invalid_arguments
from portfolio_core.portal._http import json_too_deep
from portfolio_core.portal._security import Principal
from portfolio_core.ports.errors import InvalidInputError, NotFoundError, PortError
from portfolio_core.ports.tenant import TenantContext, reset_current_tenant, set_current_tenant
from portfolio_core.wire import (
    CANCEL,
    CREDIT,
    CREDIT_PARAM,
    ITEM,
    OPENED,
    PROBLEM_MEDIA_TYPE,
    TENANT_PARAM,
    CallKind,
    decode_tenant,
    dumps,
    loads,
    methods_of,
    problem_for,
)

if TYPE_CHECKING:
    from portfolio_core.portal._app import Portal

__all__ = ["serve_websocket"]

_log = structlog.get_logger("portfolio_core.portal")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_ERROR = -32000
PIPELINE_GROUP = 16
"""Requests of one frame handled before the calls started so far may answer."""
MAX_IN_FLIGHT = 4096
"""Calls one connection may have running or answered-but-unsent before reading pauses."""


def _start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task for ``coro``, started eagerly where asyncio can (Python 3.12+: a call that
    completes without waiting costs no trip through the event loop)."""
    loop = asyncio.get_running_loop()
    if _EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    return loop.create_task(coro)


_EAGER = sys.version_info >= (3, 12)


def _error_code(exc: BaseException) -> int:
    if isinstance(exc, NotFoundError):
        return METHOD_NOT_FOUND
    if isinstance(exc, InvalidInputError):
        return INVALID_PARAMS
    return SERVER_ERROR


class _Channel:
    """One open iteration or subscription: its credit and how to stop it."""

    __slots__ = ("_wake", "credit", "max_credit", "open", "task")

    def __init__(self, credit: int, max_credit: int) -> None:
        self.max_credit = max_credit
        self.credit = max(0, min(credit, max_credit))
        self._wake = asyncio.Event()
        self.open = True
        self.task: asyncio.Task[None] | None = None

    def grant(self, n: int) -> None:
        self.credit = min(self.credit + max(0, n), self.max_credit)
        if self.credit > 0:
            self._wake.set()

    async def take(self) -> None:
        while self.credit <= 0:
            self._wake.clear()
            await self._wake.wait()
        self.credit -= 1


class _Session:
    def __init__(self, portal: Portal, websocket: WebSocket, principal: Principal) -> None:
        self.portal = portal
        self.ws = websocket
        self.principal = principal
        self.channels: dict[Any, _Channel] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._out: list[bytes] = []
        self._out_calls = 0
        self._wake = asyncio.Event()
        self._in_flight = 0
        self._room = asyncio.Event()
        self._closed = False

    # -- output ------------------------------------------------------------------------------

    async def _admit_call(self) -> None:
        """Count one more call running or answered-but-unsent; past MAX_IN_FLIGHT, stop
        reading requests until answers have been sent (a client that does not read its
        answers cannot make the server hold more)."""
        while self._in_flight >= MAX_IN_FLIGHT:
            self._room.clear()
            await self._room.wait()
        self._in_flight += 1

    def _answered(self, count: int) -> None:
        self._in_flight -= count
        if self._in_flight < MAX_IN_FLIGHT:
            self._room.set()

    def _queue(self, frame: bytes, answers: int = 0) -> None:
        if self._closed:
            if answers:
                self._answered(answers)
            return
        self._out.append(frame)
        self._out_calls += answers
        self._wake.set()

    def respond(self, rid: Any, result: Any) -> None:
        ident = str(rid).encode() if type(rid) is int else dumps(rid)
        self._queue(b'{"jsonrpc":"2.0","id":' + ident + b',"result":' + dumps(result) + b"}", 1)

    def fail(
        self, rid: Any, exc: BaseException, code: int | None = None, *, acquired: bool = False
    ) -> None:
        problem = problem_for(exc)
        error = {
            "code": code if code is not None else _error_code(exc),
            "message": problem.get("detail", "error"),
            "data": problem,
        }
        self._queue(dumps({"jsonrpc": "2.0", "id": rid, "error": error}), 1 if acquired else 0)

    def notify(self, method: str, params: Any) -> None:
        self._queue(dumps({"jsonrpc": "2.0", "method": method, "params": params}))

    async def writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            frames, answered = self._out, self._out_calls
            self._out, self._out_calls = [], 0
            if not frames:
                continue
            self.portal.metrics.buffered.inc(len(frames))
            try:
                text = frames[0] if len(frames) == 1 else b"[" + b",".join(frames) + b"]"
                await self.ws.send_text(text.decode())
            finally:
                self.portal.metrics.buffered.dec(len(frames))
                self._answered(answered)

    # -- input -------------------------------------------------------------------------------

    async def reader(self) -> None:
        limit = self.portal.config.limits.max_json_depth
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            data: bytes = raw.encode() if raw is not None else (message.get("bytes") or b"")
            if json_too_deep(data, limit):
                self.fail(
                    None,
                    InvalidInputError(f"the JSON nests deeper than {limit} levels"),
                    INVALID_REQUEST,
                )
                continue
            try:
                decoded = loads(data)
            except ValueError:
                self.fail(None, InvalidInputError("the frame is not valid JSON"), PARSE_ERROR)
                continue
            requests = decoded if isinstance(decoded, list) else [decoded]
            if not requests:
                self.fail(None, InvalidInputError("an empty batch"), INVALID_REQUEST)
            for index, request in enumerate(requests, 1):
                await self.handle(request)
                if index % PIPELINE_GROUP == 0:
                    # let the calls started so far answer (and their responses leave in a
                    # frame) while the rest of the batch is handled: the caller then works
                    # on those answers while this side works on the rest
                    await asyncio.sleep(0)

    async def handle(self, request: Any) -> None:
        if (
            not isinstance(request, dict)
            or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
        ):
            rid = request.get("id") if isinstance(request, dict) else None
            self.fail(rid, InvalidInputError("not a JSON-RPC 2.0 request"), INVALID_REQUEST)
            return
        method: str = request["method"]
        params = request.get("params", {})
        rid = request.get("id")
        if not isinstance(params, dict):
            self.fail(rid, InvalidInputError("params must be an object"), INVALID_PARAMS)
            return
        if method in (CREDIT, CANCEL):
            channel = self.channels.get(params.get("call"))
            if channel is not None:
                if method == CREDIT:
                    credit = params.get("credit")
                    channel.grant(credit if type(credit) is int else 0)
                elif channel.task is not None:
                    channel.open = False
                    channel.task.cancel()
            return
        entry, _, name = method.rpartition(".")
        bound: Bound | None = None
        try:
            bound = self.portal.prepare(self.principal, entry, name)
            tenant = params.pop(TENANT_PARAM, None)
            credit = params.pop(CREDIT_PARAM, 1)
            ctx = self._tenant(tenant)
            try:
                if bound.plain_arguments:  # JSON types only: the parsed frame is checked as is
                    args = bound.validator.validate_python(params, strict=True)
                else:
                    args = bound.validator.validate_json(dumps(params), strict=True)
            except pydantic.ValidationError as exc:
                raise invalid_arguments(bound.spec, exc) from None
            if rid is None:
                raise InvalidInputError("a call needs an id (notifications cannot be answered)")
            if rid in self.channels:
                raise InvalidInputError(f"id {rid!r} names a channel that is still open")
        except PortError as exc:
            if bound is not None:
                self.portal.metrics.record(
                    bound, 0.0, str(problem_for(exc)["type"]).rsplit(":", 1)[-1]
                )
            self.fail(rid, exc)
            return
        kind = bound.spec.kind
        if kind is CallKind.CALL:
            await self._admit_call()
            self._spawn(self._call(rid, bound, args, ctx))
            return
        channel = _Channel(
            credit if type(credit) is int else 1, self.portal.config.websocket.max_credit
        )
        self.channels[rid] = channel
        await self._admit_call()
        if kind is CallKind.ITERATE:
            # the adapter's iterator is made now, in request order (a local caller makes its
            # reader when it calls the method), and pulled in the channel's task
            token = set_current_tenant(ctx) if ctx is not None else None
            try:
                iterator = bound.call(**args)
            except Exception as exc:
                self.channels.pop(rid, None)
                self.fail(rid, exc, acquired=True)
                return
            finally:
                if token is not None:
                    reset_current_tenant(token)
            channel.task = self._spawn(self._iterate(rid, bound, iterator, ctx, channel))
        else:
            channel.task = self._spawn(self._subscribe(rid, bound, args, ctx, channel))

    def _tenant(self, tenant: Any) -> TenantContext | None:
        if tenant is None:
            return None
        if isinstance(tenant, dict):
            return decode_tenant(dumps(tenant))
        raise InvalidInputError("@tenant must be an object", field="tenant")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = _start(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- calls, iterations, subscriptions ----------------------------------------------------

    async def _call(
        self, rid: Any, bound: Bound, args: dict[str, Any], ctx: TenantContext | None
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if ctx is not None:
            set_current_tenant(ctx)  # this task's own context: no reset needed
        try:
            if self.principal.limiter is not None:
                await self.portal.security.admit(self.principal)
            result = await bound.call(**args)
        except Exception as exc:
            if not isinstance(exc, PortError):
                _log.error(
                    "portal call failed", entry=bound.entry, method=bound.spec.name, exc_info=exc
                )
            self.fail(rid, exc, acquired=True)
            self.portal.metrics.record(
                bound, loop.time() - started, str(problem_for(exc)["type"]).rsplit(":", 1)[-1]
            )
            return
        try:
            self.respond(rid, result)
        except Exception as exc:  # the result could not be written as JSON
            _log.error("portal result not serialisable", entry=bound.entry, exc_info=exc)
            self.fail(rid, exc, acquired=True)
            return
        self.portal.metrics.record(bound, loop.time() - started, None)

    async def _iterate(
        self,
        rid: Any,
        bound: Bound,
        iterator: AsyncIterator[Any],
        ctx: TenantContext | None,
        channel: _Channel,
    ) -> None:
        if ctx is not None:
            set_current_tenant(ctx)
        self.portal.metrics.channels.inc()
        outcome: BaseException | None = None
        try:
            await self.portal.security.admit(self.principal)
            while True:
                await channel.take()
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    break
                self.notify(ITEM, {"call": rid, "items": [item]})
        except asyncio.CancelledError:
            if channel.open:  # the connection is closing: nobody to answer
                raise
        except Exception as exc:
            outcome = exc
        finally:
            closer = getattr(iterator, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
            self.channels.pop(rid, None)
            self.portal.metrics.channels.dec()
        self._finish(rid, bound, outcome)

    def _finish(self, rid: Any, bound: Bound, outcome: BaseException | None) -> None:
        if outcome is None:
            self.respond(rid, {"end": True})
            return
        if not isinstance(outcome, PortError):
            _log.error("portal channel failed", entry=bound.entry, exc_info=outcome)
        self.fail(rid, outcome, acquired=True)

    async def _subscribe(
        self,
        rid: Any,
        bound: Bound,
        args: dict[str, Any],
        ctx: TenantContext | None,
        channel: _Channel,
    ) -> None:
        if ctx is not None:
            set_current_tenant(ctx)
        spec = bound.spec
        assert spec.subscription is not None
        served = self.portal.dispatcher.entry(bound.entry)
        unsubscribe_name = next(
            (n for n, s in methods_of(spec.port).items() if s.kind is CallKind.UNSUBSCRIBE), None
        )
        self.portal.metrics.channels.inc()

        async def push(item: Any) -> None:
            await channel.take()
            self.notify(ITEM, {"call": rid, "items": [item]})

        subscription: Any = None
        outcome: BaseException | None = None
        try:
            await self.portal.security.admit(self.principal)
            subscription = await bound.call(push, **args)
            self.notify(OPENED, {"call": rid})
            await subscription.wait_until(2**62, None)
        except asyncio.CancelledError:
            if channel.open:
                raise
        except Exception as exc:
            outcome = exc
        finally:
            if subscription is not None and unsubscribe_name is not None:
                with contextlib.suppress(Exception):
                    await getattr(served.adapter, unsubscribe_name)(subscription)
            self.channels.pop(rid, None)
            self.portal.metrics.channels.dec()
        self._finish(rid, bound, outcome)

    async def close(self) -> None:
        self._closed = True
        for channel in self.channels.values():
            channel.open = True  # closing with the connection: no answer is sent
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task


async def serve_websocket(portal: Portal, websocket: WebSocket) -> None:
    """Run one WebSocket connection until either side closes it."""
    headers = websocket.scope["headers"]
    authorization = next((v for k, v in headers if k == b"authorization"), None)
    api_key = next((v for k, v in headers if k == b"x-api-key"), None)
    try:
        principal = portal.security.authenticate(authorization, api_key)
    except PortError as exc:
        portal.metrics.refused.labels("unauthenticated").inc()
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            from starlette.responses import Response

            problem = problem_for(exc)
            await websocket.send_denial_response(
                Response(dumps(problem), problem["status"], media_type=PROBLEM_MEDIA_TYPE)
            )
        else:
            await websocket.close(code=4401, reason="unauthenticated")
        return
    await websocket.accept()
    session = _Session(portal, websocket, principal)
    portal.metrics.websockets.inc()
    writer = asyncio.ensure_future(session.writer())
    try:
        await session.reader()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await session.close()
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer
        portal.metrics.websockets.dec()
        with contextlib.suppress(Exception):
            await websocket.close()
