"""WebSocket transport: JSON-RPC 2.0 calls pipelined over one connection, and channels
(iterations and subscriptions) paced by credit.

Calls made while a frame is being sent are sent together in the next frame (an array), so
many concurrent callers share frames and round trips. A lost connection fails every call in
flight and every open channel with `UnavailableError`; the next use connects again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Mapping
from typing import Any

import aiohttp

from portfolio_core.adapters.remote._http import HttpTransport, transport_error
from portfolio_core.ports.errors import (
    AccessDeniedError,
    PortError,
    PortTimeoutError,
    UnavailableError,
)
from portfolio_core.wire import CANCEL, CREDIT, ITEM, OPENED, dumps, error_from_problem, loads

__all__ = ["Channel", "WsLink"]

_END = object()


def _rpc_error(error: Any) -> PortError:
    if isinstance(error, Mapping):
        data = error.get("data")
        if isinstance(data, Mapping):
            return error_from_problem(data)
        return error_from_problem({"status": 500, "detail": str(error.get("message", "error"))})
    return error_from_problem({"status": 500, "detail": "malformed error"})


def _request_frame(rid: int, method: str, params: bytes) -> bytes:
    """The JSON-RPC request ``rid`` calling ``method``; ``params`` (a JSON object's bytes) is
    spliced in as it is, never decoded and encoded again."""
    return (
        b'{"jsonrpc":"2.0","id":'
        + str(rid).encode()
        + b',"method":"'
        + method.encode()
        + b'","params":'
        + params
        + b"}"
    )


class Channel:
    """One open iteration or subscription on a link: items as they come, credit as they are
    taken."""

    __slots__ = (
        "_credit",
        "_link",
        "_ready",
        "_unacked",
        "done",
        "error",
        "items",
        "opened",
        "rid",
    )

    def __init__(self, link: WsLink, rid: int, credit: int) -> None:
        self._link = link
        self.rid = rid
        self._credit = credit
        self._unacked = 0
        self.items: collections.deque[Any] = collections.deque()
        self._ready = asyncio.Event()
        self.done = False
        self.error: PortError | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def push(self, items: list[Any]) -> None:
        self.items.extend(items)
        self._ready.set()

    def mark_opened(self) -> None:
        if not self.opened.done():
            self.opened.set_result(None)

    def finish(self, error: PortError | None) -> None:
        self.done = True
        self.error = error
        self._ready.set()
        if not self.opened.done():
            if error is not None:
                self.opened.set_exception(error)
            else:
                self.opened.set_result(None)
        # a failure nobody awaited is not worth a warning
        if self.opened.done() and not self.opened.cancelled():
            self.opened.exception()

    async def next(self) -> Any:
        """The next item; raises StopAsyncIteration at the end, or the channel's error."""
        while not self.items:
            if self.done:
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self.items.popleft()

    def taken(self, n: int = 1) -> None:
        """Give back credit for ``n`` items the consumer finished (sent in batches)."""
        self._unacked += n
        if self._unacked >= max(1, self._credit // 2) and not self.done:
            self._link.notify(CREDIT, {"call": self.rid, "credit": self._unacked})
            self._unacked = 0

    def request(self, n: int) -> None:
        """Let the server send ``n`` more items now (demand-driven channels)."""
        if not self.done:
            self._link.notify(CREDIT, {"call": self.rid, "credit": n})

    async def close(self, timeout: float) -> None:
        """End the channel and wait (at most ``timeout`` s) until the server closed its side."""
        if self.done:
            return
        self._link.notify(CANCEL, {"call": self.rid})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.done:
                    self._ready.clear()
                    await self._ready.wait()


class WsLink:
    """One open WebSocket to a portal."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, url: str) -> None:
        self._ws = ws
        self.url = url
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[Any], float]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._channels: dict[int, Channel] = {}
        self._out: list[bytes] = []
        self._wake = asyncio.Event()
        self.lost: PortError | None = None
        self._reader = asyncio.ensure_future(self._read())
        self._writer = asyncio.ensure_future(self._write())

    @classmethod
    async def connect(cls, transport: HttpTransport, url: str, heartbeat: float) -> WsLink:
        try:
            ws = await transport.session().ws_connect(
                url,
                heartbeat=heartbeat,
                max_msg_size=0,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise AccessDeniedError(
                    "the portal refused the WebSocket's credentials",
                    authenticated=exc.status == 403,
                ) from exc
            raise UnavailableError(
                f"WebSocket handshake with {url} failed: HTTP {exc.status}"
            ) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise transport_error(exc, f"connect {url}", transport.timeout) from exc
        return cls(ws, url)

    @property
    def alive(self) -> bool:
        return self.lost is None and not self._ws.closed

    # -- sending -------------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        if self.lost is not None:
            raise self.lost
        self._out.append(frame)
        self._wake.set()

    def notify(self, method: str, params: Any) -> None:
        with contextlib.suppress(PortError):
            self._send(dumps({"jsonrpc": "2.0", "method": method, "params": params}))

    def call(self, method: str, params: bytes, timeout: float) -> asyncio.Future[Any]:
        """Send a call (``params``: a JSON object's bytes); the future gets the raw result,
        or PortTimeoutError when no answer came within ``timeout`` seconds."""
        rid = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._send(_request_frame(rid, method, params))
        self._pending[rid] = (future, loop.time() + timeout)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep(timeout))
        return future

    async def _sweep(self, timeout: float) -> None:
        """Fail calls past their deadline (one task per link instead of a timer per call:
        a deadline is honoured within a fifth of the timeout, at most 0.25 s late)."""
        interval = max(0.01, min(0.25, timeout / 5))
        loop = asyncio.get_running_loop()
        while self._pending:
            await asyncio.sleep(interval)
            now = loop.time()
            late = [rid for rid, (_, deadline) in self._pending.items() if deadline <= now]
            for rid in late:
                future, _deadline = self._pending.pop(rid)
                if not future.done():
                    future.set_exception(
                        PortTimeoutError(
                            f"{self.url}: no answer within {timeout} s", timeout=timeout
                        )
                    )

    def open_channel(
        self, method: str, params: bytes, credit: int, initial: int | None = None
    ) -> Channel:
        """Open an iteration or subscription; ``credit`` is how many items may be in
        flight, ``initial`` how many the server may send before the first grant (default:
        ``credit``)."""
        rid = next(self._ids)
        channel = Channel(self, rid, credit)
        credit = credit if initial is None else initial
        with_credit = (
            params[:-1]
            + (b"," if params != b"{}" else b"")
            + b'"@credit":'
            + str(credit).encode()
            + b"}"
        )
        self._send(_request_frame(rid, method, with_credit))
        self._channels[rid] = channel
        return channel

    async def _write(self) -> None:
        ws = self._ws
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                frames, self._out = self._out, []
                if not frames:
                    continue
                text = frames[0] if len(frames) == 1 else b"[" + b",".join(frames) + b"]"
                await ws.send_str(text.decode())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(UnavailableError(f"WebSocket {self.url}: sending failed: {exc!r}"))

    # -- receiving -------------------------------------------------------------------------------

    async def _read(self) -> None:
        ws = self._ws
        reason = "closed by the server"
        try:
            async for message in ws:
                if (
                    message.type is aiohttp.WSMsgType.TEXT
                    or message.type is aiohttp.WSMsgType.BINARY
                ):
                    data = loads(message.data)
                else:
                    if message.type is aiohttp.WSMsgType.ERROR:
                        reason = f"error: {message.data!r}"
                    break
                for frame in data if isinstance(data, list) else (data,):
                    self._dispatch(frame)
            if ws.close_code == 4401:
                self._fail(AccessDeniedError("the portal refused the WebSocket's credentials"))
                return
            if ws.close_code is not None and ws.close_code not in (1000, 1001):
                reason = f"closed with code {ws.close_code}"
        except asyncio.CancelledError:
            reason = "closed by the client"
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._fail(UnavailableError(f"WebSocket {self.url} lost: {reason}"))

    def _dispatch(self, frame: Any) -> None:
        if not isinstance(frame, dict):
            return
        rid = frame.get("id")
        if rid is not None:
            error = _rpc_error(frame["error"]) if "error" in frame else None
            pending = self._pending.pop(rid, None)
            if pending is not None:
                future = pending[0]
                if not future.done():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(frame.get("result"))
                return
            channel = self._channels.pop(rid, None)
            if channel is not None:
                channel.finish(error)
            return
        method = frame.get("method")
        params = frame.get("params") or {}
        call = params.get("call") if isinstance(params, dict) else None
        channel = self._channels.get(call) if isinstance(call, int) else None
        if channel is None:
            return
        if method == ITEM:
            channel.push(params.get("items") or [])
        elif method == OPENED:
            channel.mark_opened()

    def _fail(self, error: PortError) -> None:
        if self.lost is None:
            self.lost = error
        pending, self._pending = self._pending, {}
        for future, _deadline in pending.values():
            if not future.done():
                future.set_exception(self.lost)
                future.exception()
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            channel.finish(self.lost)

    async def close(self) -> None:
        self._fail(UnavailableError(f"WebSocket {self.url} closed by the client"))
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in (self._writer, self._reader):
            task.cancel()
        with contextlib.suppress(Exception):
            await self._ws.close()
        for task in (self._writer, self._reader):
            with contextlib.suppress(BaseException):
                await task
