"""Deliberately broken variants of the memory Stream, one bug each, with the clause it breaks.

tests/testing/test_stream_broken.py asserts the Stream contract suite fails on every one.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

from portfolio_core.adapters._shared import stream as shared
from portfolio_core.adapters.memory.stream import MemoryStream, _Group, _Source
from portfolio_core.ports import OnError, StreamMessage, StreamOptions, current_tenant

T = TypeVar("T")
U = TypeVar("U")


class Broken(MemoryStream):
    clause: ClassVar[str]


class DropsWhenFull(Broken):
    """Instead of waiting for room, silently drops what does not fit."""

    clause = "stream.backpressure.waits"

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        o = opts or StreamOptions()
        count = 0
        async for item in shared.iterate_items(items):
            if await self.count(sink) < o.buffer_size:
                await super().write_stream(sink, [item], o)
            count += 1
        return count


class Reorders(Broken):
    """A non-following plain read returns the messages newest first."""

    clause = "stream.write.order"

    def stream(self, source: str, opts: StreamOptions | None = None) -> AsyncIterator[Any]:
        o = opts or StreamOptions()
        inner = super().stream(source, opts)
        if o.group is not None or o.follow:
            return inner

        async def reversed_read() -> AsyncIterator[StreamMessage]:
            for message in reversed([m async for m in inner]):
                yield message

        return reversed_read()


class DuplicatesOnWrite(Broken):
    """Stores every item twice."""

    clause = "stream.write.order"

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        doubled = [x async for item in shared.iterate_items(items) for x in (item, item)]
        return await super().write_stream(sink, doubled, opts) // 2


class AcceptsAnyPayload(Broken):
    """Stores whatever it is given, JSON-compatible or not."""

    clause = "stream.payload.invalid"

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        src = self._source(self._key(sink, "sink"))
        count = 0
        async for item in shared.iterate_items(items):
            src.entries.append((src.next_seq, item))
            src.next_seq += 1
            count += 1
        self._notify()
        return count


class TimeoutIgnored(Broken):
    """With a timeout, a reader at the end of the source just ends instead of raising."""

    clause = "stream.read.timeout"

    def stream(self, source: str, opts: StreamOptions | None = None) -> AsyncIterator[Any]:
        o = opts or StreamOptions()
        if o.timeout is not None:
            o = replace(o, follow=False)
        return super().stream(source, o)


class _PolicySwap(Broken):
    swap: ClassVar[dict[OnError, OnError]]

    def transform(
        self,
        source: AsyncIterable[T],
        fn: Callable[[T], Awaitable[U]] | Callable[[T], U],
        opts: StreamOptions | None = None,
    ) -> AsyncIterator[U]:
        o = opts or StreamOptions()
        return super().transform(
            source, fn, replace(o, on_error=self.swap.get(o.on_error, o.on_error))
        )


class SkipHalts(_PolicySwap):
    """on_error=skip behaves as halt."""

    clause = "stream.transform.skip"
    swap: ClassVar[dict[OnError, OnError]] = {OnError.SKIP: OnError.HALT}


class HaltSwallows(_PolicySwap):
    """on_error=halt behaves as skip: failures vanish."""

    clause = "stream.transform.halt"
    swap: ClassVar[dict[OnError, OnError]] = {OnError.HALT: OnError.SKIP}


class RetryUnbounded(Broken):
    """on_error=retry ignores max_retries and keeps retrying (up to a thousand times)."""

    clause = "stream.transform.retry"

    def transform(
        self,
        source: AsyncIterable[T],
        fn: Callable[[T], Awaitable[U]] | Callable[[T], U],
        opts: StreamOptions | None = None,
    ) -> AsyncIterator[U]:
        o = opts or StreamOptions()
        if o.on_error is OnError.RETRY:
            o = replace(o, max_retries=1000)
        return super().transform(source, fn, o)


class AckIsNoop(Broken):
    """ack does nothing, so acknowledged messages are delivered again."""

    clause = "stream.group.ack"

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        return None


class FollowingGroupReadFails(Broken):
    """A following group read fails at once, so a writer waiting for its sink to drain is
    never released."""

    clause = "stream.backpressure.resumes"

    def stream(self, source: str, opts: StreamOptions | None = None) -> AsyncIterator[Any]:
        o = opts or StreamOptions()
        if o.group is None or not o.follow:
            return super().stream(source, opts)

        async def failing() -> AsyncIterator[StreamMessage]:
            raise RuntimeError("the group read failed")
            yield  # an async generator  # pragma: no cover

        return failing()


class GroupDeliversToAll(Broken):
    """Every consumer of a group gets every message, as if each were its own group."""

    clause = "stream.group.shared"

    def stream(self, source: str, opts: StreamOptions | None = None) -> AsyncIterator[Any]:
        o = opts or StreamOptions()
        if o.group is not None and o.consumer is not None:
            o = replace(o, group=f"{o.group}/{o.consumer}")
        return super().stream(source, o)


class NoRedeliveryOnClose(Broken):
    """A consumer that stops keeps its unacknowledged messages until claim_after passes."""

    clause = "stream.group.redelivery.stopped"

    def stream(self, source: str, opts: StreamOptions | None = None) -> AsyncIterator[Any]:
        inner = super().stream(source, opts)
        if opts is None or opts.group is None:
            return inner

        async def keep_pending() -> AsyncIterator[StreamMessage]:
            try:
                async for message in inner:
                    yield message
            finally:
                await inner.aclose()  # type: ignore[attr-defined]
                for src in self._sources.values():
                    for group in src.groups.values():
                        for pending in group.pending.values():
                            if pending.delivered_at == float("-inf"):
                                pending.delivered_at = self._clock()

        return keep_pending()


class ClaimAfterIgnored(Broken):
    """Messages of a consumer that died are never redelivered."""

    clause = "stream.group.redelivery.claim_after"

    @staticmethod
    def _claimable(
        src: _Source, group: _Group, claim_after: float, now: float
    ) -> tuple[int | None, float | None]:
        for seq in sorted(group.pending):
            if group.pending[seq].delivered_at == float("-inf"):
                return seq, None
        return None, None


class TenantLeak(Broken):
    """Requires a tenant, then ignores it: every tenant shares one namespace."""

    clause = "stream.tenant.isolation"

    def _key(self, source: str, what: str = "source") -> tuple[str | None, str]:
        tenant, name = super()._key(source, what)
        return (None if tenant is None else "shared", name)

    async def sources(self) -> list[str]:
        return sorted({name for _t, name in self._sources})


class AckCrossesTenants(Broken):
    """ack resolves the id in every tenant's source of that name, not only the caller's."""

    clause = "stream.tenant.ack_isolated"

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        await super().ack(source, message, opts)  # validates group and id
        group = (opts or StreamOptions()).group
        for (_tenant, name), src in self._sources.items():
            held = src.groups[group].pending if name == source and group in src.groups else {}
            if held.pop(int(message.id), None) is not None:
                src.release()


class FailsOpen(Broken):
    """With no tenant set, a scoped adapter uses a shared namespace instead of refusing."""

    clause = "stream.tenant.fail_closed"

    def _key(self, source: str, what: str = "source") -> tuple[str | None, str]:
        if self.tenant_scoped and current_tenant() is None:
            shared.check_source(source, what)
            return ("", source)
        return super()._key(source, what)


class _Holding:
    """A plain reader that also holds every message from its start until it is closed."""

    def __init__(self, adapter: MemoryStream, source: str, inner: Any) -> None:
        self._inner = inner
        self._src = adapter._source(adapter._key(source))
        self._token = -id(self)
        self._src.readers[self._token] = self._src.first_seq()

    def __aiter__(self) -> _Holding:
        return self

    async def __anext__(self) -> StreamMessage:
        message: StreamMessage = await self._inner.__anext__()
        return message

    async def aclose(self) -> None:
        self._src.readers.pop(self._token, None)
        self._src.release()
        await self._inner.aclose()


class PlainReaderHoldsUntilClosed(Broken):
    """A plain reader releases nothing until its iterator is closed: with a writer waiting
    for room, both wait for each other."""

    clause = "stream.backpressure.plain_reader"

    def stream(self, source: str, opts: StreamOptions | None = None) -> AsyncIterator[Any]:
        inner = super().stream(source, opts)
        if opts is not None and opts.group is not None:
            return inner
        return _Holding(self, source, inner)


class SeparatorsFolded(Broken):
    """Builds its keys with ':' as the only separator, so 'a/b' and 'a:b' are one source."""

    clause = "stream.ids.opaque"

    def _key(self, source: str, what: str = "source") -> tuple[str | None, str]:
        return super()._key(source.replace("/", ":") if source else source, what)


class LeaksConnectionErrors(Broken):
    """Lets the driver's OSError through instead of raising UnavailableError."""

    clause = "stream.faults.unavailable"

    def _backend(self, operation: str) -> None:
        if self._faults is not None:
            self._faults(operation)


VARIANTS: list[type[Broken]] = [
    LeaksConnectionErrors,
    DropsWhenFull,
    Reorders,
    DuplicatesOnWrite,
    AcceptsAnyPayload,
    TimeoutIgnored,
    SkipHalts,
    HaltSwallows,
    RetryUnbounded,
    AckIsNoop,
    FollowingGroupReadFails,
    GroupDeliversToAll,
    NoRedeliveryOnClose,
    ClaimAfterIgnored,
    TenantLeak,
    AckCrossesTenants,
    FailsOpen,
    PlainReaderHoldsUntilClosed,
    SeparatorsFolded,
]
