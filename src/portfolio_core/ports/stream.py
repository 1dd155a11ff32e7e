"""Stream: read messages from a named source, write to a sink, transform on the way.

Contract
--------
* ``stream(source, opts)`` is an async iterator of :class:`StreamMessage`. It waits at most
  ``opts.timeout`` seconds for the next message and then raises
  :class:`~portfolio_core.ports.errors.PortTimeoutError` (``None`` waits forever; an adapter
  over a finite source simply ends).
* Buffers hold at most ``opts.buffer_size`` messages: a slow consumer slows the producer;
  nothing is dropped silently.
* ``write_stream(sink, items)`` appends every item in order and returns how many it wrote.
* ``transform(source, fn, opts)`` applies ``fn`` (sync or async) to each item, honouring
  ``opts.on_error``: ``halt`` re-raises the first failure, ``skip`` drops the failing item,
  ``retry`` calls ``fn`` again up to ``opts.max_retries`` times and then halts.
* With a consumer ``group`` (capability ``ACKNOWLEDGE``), delivery is at-least-once: a
  message not passed to ``ack`` is delivered again to the group after its consumer dies or
  ``opts.claim_after`` seconds pass. ``ack`` is idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["OnError", "Stream", "StreamCapability", "StreamMessage", "StreamOptions"]

T = TypeVar("T")
U = TypeVar("U")


class OnError(StrEnum):
    SKIP = "skip"
    HALT = "halt"
    RETRY = "retry"


class StreamCapability(StrEnum):
    ACKNOWLEDGE = "stream.acknowledge"
    """Consumer groups with acknowledgement and redelivery (at-least-once)."""
    PERSISTENT = "stream.persistent"
    TENANT_SCOPED = "stream.tenant_scoped"


@dataclass(frozen=True, slots=True)
class StreamOptions:
    buffer_size: int = 64
    timeout: float | None = None
    on_error: OnError = OnError.HALT
    max_retries: int = 3
    group: str | None = None
    consumer: str | None = None
    claim_after: float = 30.0


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """A message read from a source; ``id`` is unique and ordered within the source."""

    id: str
    payload: Any
    source: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Stream(Protocol):
    """Async streams of messages; see the module docstring."""

    def stream(
        self, source: str, opts: StreamOptions | None = None
    ) -> AsyncIterator[StreamMessage]:
        """Iterate the messages of ``source``."""
        ...

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        """Append every item to ``sink``; returns the count written."""
        ...

    def transform(
        self,
        source: AsyncIterable[T],
        fn: Callable[[T], Awaitable[U]] | Callable[[T], U],
        opts: StreamOptions | None = None,
    ) -> AsyncIterator[U]:
        """Map ``fn`` over ``source`` honouring ``opts.on_error``."""
        ...

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        """Acknowledge ``message`` for ``opts.group``; idempotent.

        Raises UnsupportedError without capability ``ACKNOWLEDGE``.
        """
        ...
