"""How a remote adapter iterates: `Iteration` paces one server iterator over the
WebSocket by credit; `Resuming` reopens it after a lost connection from the last position
delivered."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from portfolio_core.adapters.remote._ws import Channel
from portfolio_core.ports.errors import UnavailableError
from portfolio_core.wire import MethodSpec

if TYPE_CHECKING:
    from portfolio_core.adapters.remote._adapter import RemoteAdapter

__all__ = ["Iteration", "Resuming"]


class Iteration:
    """An iteration over the WebSocket, paced by credit.

    The server's iterator is asked for as soon as the method is called (as a local adapter
    creates its reader at the call), so readers opened one after the other are opened in
    that order on the server too. With ``lazy`` nothing is fetched before the first
    ``__anext__`` (fetching may have effects on a shared source); with ``demand`` nothing is
    ever fetched ahead: each ``__anext__`` asks for one item. ``aclose`` returns once the
    server has closed its side.
    """

    def __init__(
        self,
        adapter: RemoteAdapter,
        spec: MethodSpec,
        args: dict[str, Any],
        credit: int,
        demand: bool = False,
        *,
        lazy: bool = False,
    ) -> None:
        self._adapter = adapter
        self._decode = adapter._item_decoder(spec)
        self._spec, self._args, self._credit = spec, args, credit
        self._initial = 0 if (lazy or demand) else credit
        self._granted = not (lazy or demand)
        self._opening: asyncio.Future[Channel] | None = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # called outside a loop: open on the first __anext__
        else:
            self._open()
        self._demand = demand
        self._closed = False

    def _open(self) -> asyncio.Future[Channel]:
        if self._opening is None:
            self._opening = asyncio.ensure_future(
                self._adapter._open_channel(self._spec, self._args, self._credit, self._initial)
            )
            self._opening.add_done_callback(_retrieve)
        return self._opening

    def __aiter__(self) -> Iteration:
        return self

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        try:
            channel = await self._open()
            if self._demand and not channel.items:
                channel.request(1)
                raw = await channel.next()
            else:
                if not self._granted:
                    self._granted = True
                    channel.request(self._credit)
                raw = await channel.next()
                if not self._demand:
                    channel.taken()
        except UnavailableError:
            if self._adapter._closed:  # the adapter was closed under this iteration
                raise StopAsyncIteration from None
            raise
        return self._decode(raw)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._opening is None:
            return
        try:
            channel = await self._opening
        except Exception:
            return
        await channel.close(self._adapter._timeout)


class Resuming:
    """An iteration that survives lost connections: when the connection breaks
    (``UnavailableError``) it is reopened, with backoff, after the position of the last
    item delivered (``spec.resume_from``), so nothing is skipped or delivered twice. It ends
    when closed or when the adapter is closed. Opened with no start position, it resumes
    from the last item delivered or, when none was yet, from where the server starts anew."""

    def __init__(self, adapter: RemoteAdapter, spec: MethodSpec, args: dict[str, Any]) -> None:
        assert spec.resume_from is not None  # noqa: S101  (only built for such specs)
        self._adapter, self._spec, self._args = adapter, spec, dict(args)
        self._arg, self._attribute = spec.resume_from
        self._current = adapter._iterate_once(spec, dict(self._args))
        self._delay = adapter._reconnect_delay
        self._closed = False

    def __aiter__(self) -> Resuming:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._closed or self._adapter._closed:
                raise StopAsyncIteration
            try:
                item = await self._current.__anext__()
            except UnavailableError:
                with contextlib.suppress(Exception):
                    await self._current.aclose()  # type: ignore[attr-defined]
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self._adapter._reconnect_max_delay)
                if not self._closed:
                    self._current = self._adapter._iterate_once(self._spec, dict(self._args))
                continue
            self._delay = self._adapter._reconnect_delay
            position = getattr(item, self._attribute, None)
            if position is not None:
                self._args[self._arg] = position
            return item

    async def aclose(self) -> None:
        self._closed = True
        await self._current.aclose()  # type: ignore[attr-defined]


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
