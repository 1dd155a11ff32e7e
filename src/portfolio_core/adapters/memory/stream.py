"""In-process Stream: bounded logs with backpressure, consumer groups and acknowledgement.

The executable specification of the Stream port. Semantics beyond the port's contract:

* Each source is a log of *retained* messages. A message is **released** (forgotten) once
  every consumer of the source is done with it: every group has acknowledged it and every
  open plain reader (a ``stream()`` iterator without a group, open from the call to
  ``stream()`` until it is exhausted, closed or garbage collected) has read past it. A source
  nobody consumes yet releases nothing, so its writers wait once it holds ``buffer_size``
  messages: a slow consumer slows the producer, and nothing is ever dropped.
* A plain reader starts at the oldest retained message; so does a new group. A reader that
  arrives after others released messages does not see them.
* Within a group each message goes to one consumer. A consumer's unacknowledged messages
  become available to the group as soon as an iterator of that consumer is closed (all of
  that consumer's messages: give concurrent iterators distinct consumer names), or once they
  have been pending ``claim_after`` seconds by the adapter's ``clock``. Each message of a
  group carries the header ``deliveries`` (how many times the group delivered it).
* Ids are decimal sequence numbers ("1", "2", ...) per source. Payloads must be
  JSON-compatible and are stored as copies, so mutating a payload after writing it, or a
  message after reading it, changes nothing stored.
* One event loop at a time: the adapter is not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from portfolio_core.adapters._shared import stream as shared
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import InvalidInputError, PortTimeoutError, UnavailableError
from portfolio_core.ports.stream import StreamCapability, StreamMessage, StreamOptions

__all__ = ["MemoryStream", "MemoryStreamConfig"]

T = TypeVar("T")
U = TypeVar("U")

_RELEASED = float("-inf")


class MemoryStreamConfig(BaseModel):
    """Configuration of `MemoryStream`."""

    model_config = ConfigDict(extra="forbid")

    tenant_scoped: bool = False


@dataclass(slots=True)
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int = 1


@dataclass(slots=True)
class _Group:
    cursor: int
    """Sequence number of the last message delivered to the group (0: none)."""
    pending: dict[int, _Pending] = field(default_factory=dict)


@dataclass(slots=True)
class _Source:
    entries: deque[tuple[int, Any]] = field(default_factory=deque)
    next_seq: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)
    readers: dict[int, int] = field(default_factory=dict)
    """Open plain readers: token -> next sequence number they will read."""

    def first_seq(self) -> int:
        return self.entries[0][0] if self.entries else self.next_seq

    def entry(self, seq: int) -> tuple[int, Any] | None:
        if not self.entries:
            return None
        index = seq - self.entries[0][0]
        if 0 <= index < len(self.entries):
            return self.entries[index]
        return None

    def release(self) -> None:
        if not self.groups and not self.readers:
            return
        low = self.next_seq
        for group in self.groups.values():
            low = min(low, group.cursor + 1, *group.pending)
        for position in self.readers.values():
            low = min(low, position)
        while self.entries and self.entries[0][0] < low:
            self.entries.popleft()


class MemoryStream(shared.TransformingStream):
    """Stream adapter keeping every source in process memory.

    Args:
        tenant_scoped: namespace every source by the current tenant (fail closed).
        clock: monotonic seconds used for ``claim_after`` (injectable for tests).
        faults: the conformance kit's hook for simulating an unreachable backend (see
            `portfolio_core.testing.faults`): called with the operation's name before each
            message is written, read or acknowledged and before each inspection; an
            ``OSError`` it raises becomes
            [UnavailableError][portfolio_core.ports.errors.UnavailableError].
    """

    capabilities = declare(
        StreamCapability.ACKNOWLEDGE, StreamCapability.TENANT_SCOPED, StreamCapability.INSPECT
    )
    config_model: ClassVar[type[BaseModel]] = MemoryStreamConfig

    def __init__(
        self,
        *,
        tenant_scoped: bool = False,
        clock: Callable[[], float] = time.monotonic,
        faults: Callable[[str], None] | None = None,
    ) -> None:
        self.tenant_scoped = tenant_scoped
        self._clock = clock
        self._faults = faults
        self._sources: dict[tuple[str | None, str], _Source] = {}
        self._changed = asyncio.Event()
        self._tokens = 0

    @classmethod
    def from_config(cls, config: MemoryStreamConfig) -> Self:
        return cls(tenant_scoped=config.tenant_scoped)

    def __repr__(self) -> str:
        return f"MemoryStream(tenant_scoped={self.tenant_scoped}, sources={len(self._sources)})"

    def close(self) -> None:
        """Nothing to release; idempotent."""

    # -- internals -------------------------------------------------------------------------

    def _key(self, source: str, what: str = "source") -> tuple[str | None, str]:
        shared.check_source(source, what)
        return (shared.scoped_tenant(self.tenant_scoped), source)

    def _source(self, key: tuple[str | None, str]) -> _Source:
        src = self._sources.get(key)
        if src is None:
            src = self._sources[key] = _Source()
        return src

    def _backend(self, operation: str) -> None:
        """Where a networked stream would reach its server: the fault hook may raise here,
        before anything is written, read or acknowledged. An unreachable backend
        (``OSError``) is UnavailableError."""
        if self._faults is None:
            return
        try:
            self._faults(operation)
        except OSError as exc:
            raise UnavailableError(
                f"the stream backend is unreachable ({operation}): {exc}", port="Stream"
            ) from exc

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, event: asyncio.Event, deadline: float | None, cap: float | None) -> None:
        """Wait for ``event`` until ``deadline`` (loop time); raise PortTimeoutError after it."""
        loop = asyncio.get_running_loop()
        waits = []
        if deadline is not None:
            waits.append(deadline - loop.time())
        if cap is not None:
            waits.append(cap)
        wait = min(waits) if waits else None
        if deadline is not None and deadline - loop.time() <= 0:
            raise PortTimeoutError("no message within the timeout", port="Stream")
        try:
            await asyncio.wait_for(event.wait(), wait)
        except TimeoutError:
            if deadline is not None and loop.time() >= deadline:
                raise PortTimeoutError("no message within the timeout", port="Stream") from None

    # -- the port ----------------------------------------------------------------------------

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        """Append ``items`` to ``sink``; waits while it retains ``buffer_size`` messages.

        Raises ``PortTimeoutError`` when a wait exceeds ``opts.timeout`` (the items before the
        waiting one are written) and ``InvalidInputError`` for a payload that is not
        JSON-compatible (the items before it are written).
        """
        o = opts or shared.DEFAULT_OPTIONS
        key = self._key(sink, "sink")
        loop = asyncio.get_running_loop()
        written = 0
        async for item in shared.iterate_items(items):
            payload = shared.copy_payload(item, index=written)
            self._backend("write")
            deadline = None if o.timeout is None else loop.time() + o.timeout
            src = self._source(key)
            while len(src.entries) >= o.buffer_size:
                event = self._changed
                try:
                    await self._wait(event, deadline, None)
                except PortTimeoutError as exc:
                    raise PortTimeoutError(
                        f"sink {sink!r} stayed full ({o.buffer_size} messages) for "
                        f"{o.timeout} s; {written} item(s) written",
                        timeout=o.timeout,
                        port="Stream",
                    ) from exc
                src = self._source(key)
            src.entries.append((src.next_seq, payload))
            src.next_seq += 1
            written += 1
            self._notify()
        return written

    def stream(
        self, source: str, opts: StreamOptions | None = None
    ) -> AsyncIterator[StreamMessage]:
        """Iterate ``source``: alone (fan-out) or in ``opts.group`` (shared, acknowledged)."""
        o = opts or shared.DEFAULT_OPTIONS
        key = self._key(source)
        if o.group is None:
            return _PlainReader(self, key, o)
        return self._read_group(key, o)

    async def _read_group(
        self, key: tuple[str | None, str], o: StreamOptions
    ) -> AsyncIterator[StreamMessage]:
        assert o.group is not None  # noqa: S101  (only called for group reads)
        loop = asyncio.get_running_loop()
        consumer = o.consumer or f"consumer-{uuid.uuid4().hex}"
        src = self._source(key)
        if o.group not in src.groups:
            src.groups[o.group] = _Group(cursor=src.first_seq() - 1)
        try:
            while True:
                deadline = None if o.timeout is None else loop.time() + o.timeout
                while True:
                    self._backend("read")
                    src = self._source(key)
                    group = src.groups[o.group]
                    now = self._clock()
                    seq, soonest = self._claimable(src, group, o.claim_after, now)
                    if seq is not None:
                        pending = group.pending[seq]
                        pending.consumer = consumer
                        pending.delivered_at = now
                        pending.deliveries += 1
                        break
                    nxt = src.entry(max(group.cursor + 1, src.first_seq()))
                    if nxt is not None:
                        seq = nxt[0]
                        group.cursor = seq
                        group.pending[seq] = _Pending(consumer, now)
                        break
                    if not o.follow:
                        return
                    await self._wait(self._changed, deadline, soonest)
                found = src.entry(seq)
                assert found is not None  # noqa: S101  (pending entries are kept)
                headers = {"deliveries": str(group.pending[seq].deliveries)}
                self._notify()
                yield StreamMessage(str(seq), shared.copy_payload(found[1]), key[1], headers)
        finally:
            src = self._source(key)
            group_now = src.groups.get(o.group)
            if group_now is not None:
                for pending in group_now.pending.values():
                    if pending.consumer == consumer:
                        pending.delivered_at = _RELEASED
            self._notify()

    @staticmethod
    def _claimable(
        src: _Source, group: _Group, claim_after: float, now: float
    ) -> tuple[int | None, float | None]:
        """The oldest claimable pending message, and seconds until the next one becomes so."""
        soonest: float | None = None
        for seq in sorted(group.pending):
            idle = now - group.pending[seq].delivered_at
            if idle >= claim_after:
                return seq, None
            left = claim_after - idle
            soonest = left if soonest is None else min(soonest, left)
        return None, soonest

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        """Acknowledge ``message`` for ``opts.group``; idempotent, unknown ids are ignored."""
        key = self._key(source)
        _, group = shared.ack_group(opts)
        try:
            seq = int(message.id)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"{message.id!r} is not a message id of this adapter",
                field="message",
                port="Stream",
            ) from None
        self._backend("ack")
        src = self._sources.get(key)
        if src is None or group not in src.groups:
            return
        if src.groups[group].pending.pop(seq, None) is not None:
            src.release()
            self._notify()

    # -- INSPECT --------------------------------------------------------------------------------

    async def sources(self) -> list[str]:
        """Names of the current namespace's sources (written to or read from), sorted."""
        tenant = shared.scoped_tenant(self.tenant_scoped)
        self._backend("sources")
        return sorted(name for (t, name) in self._sources if t == tenant)

    async def count(self, source: str) -> int:
        """Messages ``source`` retains (0 when it does not exist)."""
        key = self._key(source)
        self._backend("count")
        src = self._sources.get(key)
        return 0 if src is None else len(src.entries)


class _PlainReader:
    """A reader without a group: registered from creation (so it holds the messages it has
    not read yet), unregistered when closed, exhausted or garbage collected."""

    def __init__(self, adapter: MemoryStream, key: tuple[str | None, str], o: StreamOptions):
        self._adapter = adapter
        self._key = key
        self._opts = o
        adapter._tokens += 1
        self._token = adapter._tokens
        src = adapter._source(key)
        src.readers[self._token] = src.first_seq()
        self._open = True

    def __aiter__(self) -> _PlainReader:
        return self

    async def __anext__(self) -> StreamMessage:
        if not self._open:
            raise StopAsyncIteration
        adapter, o = self._adapter, self._opts
        loop = asyncio.get_running_loop()
        deadline = None if o.timeout is None else loop.time() + o.timeout
        while True:
            adapter._backend("read")
            src = adapter._source(self._key)
            found = src.entry(max(src.readers[self._token], src.first_seq()))
            if found is not None:
                break
            if not o.follow:
                self._close()
                raise StopAsyncIteration
            await adapter._wait(adapter._changed, deadline, None)
        seq, payload = found
        src.readers[self._token] = seq + 1
        src.release()
        adapter._notify()
        return StreamMessage(str(seq), shared.copy_payload(payload), self._key[1])

    def _close(self) -> None:
        if self._open:
            self._open = False
            src = self._adapter._source(self._key)
            src.readers.pop(self._token, None)
            src.release()
            self._adapter._notify()

    async def aclose(self) -> None:
        """Stop reading and let go of the unread messages; idempotent."""
        self._close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self._close()
