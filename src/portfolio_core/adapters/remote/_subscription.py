"""A subscription whose handler runs here while the portal's adapter delivers.

The portal pushes items only while this side has credit; each item is handed to the handler
in order, and the checkpoint is the position of the last item the handler finished. When the
connection is lost (the server restarted, the network failed) the subscription reconnects
with backoff and subscribes again from ``checkpoint + 1``: items that had arrived but were not
handled are dropped with the old connection and delivered again, so the handler sees every
item once, in order (as long as the server keeps them). The handler-error policy
(stop/retry/skip) is applied here, as a local adapter applies it.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from portfolio_core.adapters._shared.task_subscription import TaskSubscription
from portfolio_core.ports.errors import PortTimeoutError, UnavailableError
from portfolio_core.ports.event_store import OnHandlerError
from portfolio_core.ports.tenant import TenantContext, reset_current_tenant, set_current_tenant

if TYPE_CHECKING:
    from portfolio_core.adapters.remote._adapter import RemoteAdapter
    from portfolio_core.wire import MethodSpec

__all__ = ["RemoteSubscription"]

_ids = itertools.count(1)
MAX_RETRIES = 5
RETRY_DELAY = 0.01


class RemoteSubscription(TaskSubscription):
    """A subscription to a served entry (see the module docstring); satisfies the port's
    ``Subscription`` protocol."""

    def __init__(
        self,
        adapter: RemoteAdapter,
        spec: MethodSpec,
        handler: Callable[[Any], Awaitable[None]],
        args: dict[str, Any],
        *,
        start: int,
        on_error: OnHandlerError,
        tenant: TenantContext | None,
    ) -> None:
        assert spec.subscription is not None  # noqa: S101  (subscribe specs have one)
        super().__init__(
            f"remote-sub-{next(_ids)}-{uuid.uuid4().hex[:8]}",
            handler,
            checkpoint=start - 1,
            on_error=on_error,
            max_retries=MAX_RETRIES,
            retry_delay=RETRY_DELAY,
        )
        self._adapter = adapter
        self._spec = spec
        self._args = args
        self._tenant = tenant
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reconnects = 0
        """How many times the subscription reconnected after losing its connection."""
        self._task = asyncio.ensure_future(self._run())

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stopped

    async def opened(self) -> None:
        """Wait until the server confirmed the first subscription (or raise why it refused)."""
        await asyncio.shield(self._opened)

    async def _run(self) -> None:
        spec = self._spec
        sub = spec.subscription
        assert sub is not None  # noqa: S101  (subscribe specs have one)
        decode = self._adapter._item_decoder(spec)
        delay = self._adapter._reconnect_delay
        token = set_current_tenant(self._tenant) if self._tenant is not None else None
        try:
            while not self._stopped:
                channel = None
                try:
                    args = {**self._args, sub.resume: self._checkpoint + 1}
                    channel = await self._adapter._open_channel(spec, args, self._adapter._credit)
                    await channel.opened
                    if not self._opened.done():
                        self._opened.set_result(None)
                    delay = self._adapter._reconnect_delay
                    while True:
                        item = decode(await channel.next())
                        if not await self._deliver(item):
                            return
                        channel.taken()
                        await self._advance(getattr(item, sub.position))
                except StopAsyncIteration:
                    return
                except (UnavailableError, PortTimeoutError):
                    if not self._opened.done():
                        raise
                    self.reconnects += 1
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._adapter._reconnect_max_delay)
                finally:
                    if channel is not None and self.stopping:
                        await channel.close(self._adapter._timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error = exc
            if not self._opened.done():
                self._opened.set_exception(exc)
                self._opened.exception()
        finally:
            if token is not None:
                reset_current_tenant(token)
            await self._finished()
