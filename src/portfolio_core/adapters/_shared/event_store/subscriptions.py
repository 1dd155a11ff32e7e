"""Subscriptions shared by every EventStore adapter: catch-up then live delivery by polling
after the checkpoint (`PollingSubscription`), woken early from any thread by appends in
this process (`Wakeup`), and the set of them one store keeps (`SubscriptionSet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import uuid
from collections.abc import Awaitable, Callable

from portfolio_core.adapters._shared.event_store.validation import PORT
from portfolio_core.adapters._shared.task_subscription import TaskSubscription
from portfolio_core.ports.event_store import (
    EventHandler,
    EventQuery,
    OnHandlerError,
    RecordedEvent,
    Subscription,
)

Fetch = Callable[[int, int], Awaitable[list[RecordedEvent]]]
"""``fetch(from_position, limit)``: matching events with ``position >= from_position``."""


_ids = itertools.count(1)


class Wakeup:
    """Wakes waiting subscriptions from any thread (appends may run in other threads/loops)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def register(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters.add((loop, event))

    def unregister(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters.discard((loop, event))

    def notify(self) -> None:
        if not self._waiters:  # nobody to wake: one registering now reads before it waits
            return
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # loop closed: its subscription is gone
                loop.call_soon_threadsafe(event.set)


class PollingSubscription(TaskSubscription):
    """Catch-up then live delivery by repeatedly fetching after the checkpoint.

    Delivery is pull-based: at most ``batch_size`` events are held in memory, and the next
    batch is fetched only after the handler finished the previous one (backpressure: a slow
    handler slows delivery, nothing is dropped). The loop sleeps until woken by an append in
    this process (``Wakeup``), by an external notification, or for ``poll_interval`` seconds.
    """

    def __init__(
        self,
        handler: EventHandler,
        fetch: Fetch,
        *,
        from_position: int,
        on_error: OnHandlerError,
        wakeup: Wakeup,
        poll_interval: float = 0.05,
        batch_size: int = 256,
        max_retries: int = 5,
        retry_delay: float = 0.01,
    ) -> None:
        self._next = max(1, from_position)
        super().__init__(
            f"sub-{next(_ids)}-{uuid.uuid4().hex[:8]}",
            handler,
            checkpoint=self._next - 1,
            on_error=on_error,
            max_retries=max_retries,
            retry_delay=retry_delay,
            port=PORT,
        )
        self._fetch = fetch
        self._wakeup = wakeup
        self._poll = poll_interval
        self._batch = max(1, batch_size)
        self._woken = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        wakeup.register(self._loop, self._woken)
        self._task = self._loop.create_task(self._run(), name=self._id)

    def wake(self) -> None:
        self._woken.set()

    async def _run(self) -> None:
        try:
            while not self._stopped:
                self._woken.clear()
                batch = await self._fetch(self._next, self._batch)
                for event in batch:
                    if not await self._deliver(event):
                        return
                    self._next = event.position + 1
                    await self._advance(event.position)
                if len(batch) < self._batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._woken.wait(), self._poll)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store failed: keep the error, stop
            self._error = exc
        finally:
            await self._finished()

    async def stop(self) -> None:
        self._wakeup.unregister(self._loop, self._woken)
        await super().stop()


def subscription_query(stream: str | None, base: EventQuery) -> Callable[[int, int], EventQuery]:
    """The query a subscription fetches with, from a position and a batch size."""
    streams = frozenset({stream}) if stream is not None else base.streams
    # A stream outside the filter's streams: nothing can match, so ask for nothing.
    disjoint = stream is not None and bool(base.streams) and stream not in base.streams

    def build(position: int, limit: int) -> EventQuery:
        return EventQuery(
            types=base.types,
            streams=streams,
            correlation_id=base.correlation_id,
            since=base.since,
            until=base.until,
            data=base.data,
            metadata=base.metadata,
            where=base.where,
            ids=base.ids,
            from_position=max(position, base.from_position),
            limit=0 if disjoint else limit,
        )

    return build


class SubscriptionSet:
    """The polling subscriptions of one store: each reads through the store's ``query``, is
    woken by its ``wakeup``, and is stopped by ``close`` or, with every other, by
    ``close_all`` when the store closes."""

    def __init__(self, wakeup: Wakeup, *, poll_interval: float, batch_size: int) -> None:
        self.wakeup = wakeup
        self._poll = poll_interval
        self._batch = batch_size
        self._subs: dict[str, PollingSubscription] = {}

    def open(
        self,
        query: Callable[[EventQuery], Awaitable[list[RecordedEvent]]],
        handler: EventHandler,
        *,
        stream: str | None,
        from_position: int,
        filter: EventQuery | None,
        on_error: OnHandlerError,
    ) -> PollingSubscription:
        """Start a subscription (arguments already validated) and keep it until closed."""
        build = subscription_query(stream, filter or EventQuery())

        async def fetch(position: int, limit: int) -> list[RecordedEvent]:
            return await query(build(position, limit))

        sub = PollingSubscription(
            handler,
            fetch,
            from_position=from_position,
            on_error=on_error,
            wakeup=self.wakeup,
            poll_interval=self._poll,
            batch_size=self._batch,
        )
        self._subs[sub.id] = sub
        return sub

    async def close(self, subscription: Subscription) -> None:
        """Stop ``subscription`` if it is one of these; idempotent."""
        sub = self._subs.pop(subscription.id, None)
        if sub is not None:
            await sub.stop()

    async def close_all(self) -> None:
        for sub_id in list(self._subs):
            sub = self._subs.pop(sub_id, None)
            if sub is not None:
                await sub.stop()
