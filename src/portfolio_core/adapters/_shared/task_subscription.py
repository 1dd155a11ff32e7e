"""What every subscription that runs its handler in one task shares: the event store's local
subscriptions and the remote adapter's subscriptions.

`TaskSubscription` holds the id, the checkpoint (the position of the last item the handler
finished) and the error that stopped delivery; `wait_until` waits for a position;
`_deliver` applies the handler-error policy (stop, retry with backoff, skip); `stop` ends
the task. Subclasses start ``self._task`` (their delivery loop) in their constructor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from portfolio_core.ports.errors import PortTimeoutError
from portfolio_core.ports.event_store import OnHandlerError

__all__ = ["TaskSubscription"]


class TaskSubscription:
    """A subscription whose ``handler`` runs in ``self._task``; satisfies the port's
    ``Subscription`` protocol once the subclass started the task.

    ``on_error`` decides what a handler failure does: ``stop`` keeps it as `error` and
    ends delivery, ``retry`` calls the handler again up to ``max_retries`` times (after
    ``retry_delay`` seconds, doubling), then stops; ``skip`` goes on with the next item.
    ``port`` names the port in the timeout errors of `wait_until`.
    """

    _task: asyncio.Future[None]

    def __init__(
        self,
        ident: str,
        handler: Callable[[Any], Awaitable[None]],
        *,
        checkpoint: int,
        on_error: OnHandlerError,
        max_retries: int = 5,
        retry_delay: float = 0.01,
        port: str | None = None,
    ) -> None:
        self._id = ident
        self._handler = handler
        self._checkpoint = checkpoint
        self._on_error = OnHandlerError(on_error)
        self._max_retries = max_retries
        self._retry_delay = retry_delay
        self._port = port
        self._error: BaseException | None = None
        self._progress = asyncio.Condition()
        self._stopped = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def checkpoint(self) -> int:
        return self._checkpoint

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def active(self) -> bool:
        return not self._task.done()

    async def wait_until(self, position: int, timeout: float | None = None) -> None:
        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(
                    lambda: self._checkpoint >= position or self._task.done()
                )

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError as exc:
            raise PortTimeoutError(
                f"subscription {self._id} did not reach position {position} "
                f"(checkpoint {self._checkpoint})",
                timeout=timeout,
                port=self._port,
            ) from exc
        if self._checkpoint < position and self._error is not None:
            raise self._error

    async def _advance(self, position: int) -> None:
        """Move the checkpoint to ``position`` and wake whoever waits for it."""
        async with self._progress:
            self._checkpoint = position
            self._progress.notify_all()

    async def _deliver(self, item: Any) -> bool:
        """Run the handler on one item; False means the subscription stops (`error` set)."""
        attempts = 0
        while True:
            try:
                await self._handler(item)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._on_error is OnHandlerError.SKIP:
                    return True
                if self._on_error is OnHandlerError.RETRY and attempts < self._max_retries:
                    attempts += 1
                    await asyncio.sleep(self._retry_delay * (2 ** (attempts - 1)))
                    continue
                self._error = exc
                return False

    async def _finished(self) -> None:
        """Wake every waiter: the task ended (call it last in the delivery loop)."""
        async with self._progress:
            self._progress.notify_all()

    async def stop(self) -> None:
        """Stop delivering; idempotent."""
        self._stopped = True
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._finished()
