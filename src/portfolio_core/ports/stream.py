"""Stream: read messages from a named source, write to a sink, transform on the way.

Contract
--------

**Sources and sinks.**
A source (or sink: the same thing, named by a non-empty string) is an ordered,
append-only log of messages. ``write_stream(sink, items)`` appends every item in order and
returns how many it wrote. Message ids are non-empty strings, unique within a source (two
sources may use the same ids); their format is the adapter's to document ("1", "2", ... or
Redis entry ids) and callers must not parse nor compare them: the order of messages is the
order a reader receives them, which is write order. Source names containing ``:`` or ``/``
never share messages with another name (an adapter may give ``/`` a meaning, as the file
adapter's paths do, and document it).
Payloads are JSON-compatible values (``None``, bool, int, float, str, lists and
string-keyed dicts of those), stored as copies; NaN and the infinities are not JSON
numbers and are refused like anything else, which raises
[InvalidInputError][portfolio_core.ports.errors.InvalidInputError] naming the item's index, the
items
before it written and none after it.

**Reading.**
``stream(source, opts)`` is an async iterator of
[StreamMessage][portfolio_core.ports.stream.StreamMessage], in write order.

* Without ``opts.group`` every call is an independent reader that starts at the oldest
  message the source still retains (fan-out: two readers each see every message). No
  acknowledgement is involved.
* With ``opts.group`` (capability ``ACKNOWLEDGE``) the readers of one group share its
  messages: each message is delivered to one consumer of the group, and every group sees
  every message. A group is created by its first read and starts at the oldest retained
  message. Delivery is at-least-once: a message not passed to ``ack`` is delivered again
  (to any consumer of the group) once its consumer *stops* (its iterator is closed) or
  after it has been pending ``opts.claim_after`` seconds (a consumer that *died* without
  closing). ``ack`` is idempotent; acknowledging an unknown or already acknowledged
  message does nothing (an id the adapter could never have issued raises
  ``InvalidInputError``).
* ``opts.follow`` (default ``True``) waits for new messages at the end of the source;
  ``False`` ends the iteration when nothing is available right now.
* ``opts.timeout`` bounds each wait for the next message: after that many seconds
  without one the iterator raises
  [PortTimeoutError][portfolio_core.ports.errors.PortTimeoutError] (``None`` waits forever).

**Backpressure.**
Buffers hold at most ``opts.buffer_size`` messages and nothing is dropped silently: a
writer whose sink already holds ``buffer_size`` messages that its consumers have not
released waits (up to ``opts.timeout``, then ``PortTimeoutError``, with the items
before the blocked one written) until a consumer releases one. What counts as
"released" is adapter-specific and documented by each adapter (acknowledged by every
group, read by every open reader, ...), within one rule every adapter keeps: a plain
reader (no group) never holds back a writer with a message it has already received -- it
releases each message once it asks for the next one, or holds none at all -- so a writer
and a plain reader of one sink never deadlock. A reader's ``buffer_size`` bounds how many
messages it fetches ahead.

**Errors while reading and transforming (``opts.on_error``).**
* ``halt`` (default): raise the first failure (a record that cannot be decoded raises
  ``InvalidInputError`` saying where it is: line number, entry id).
* ``skip``: drop the failing item and go on (a skipped group message is acknowledged, so
  it is not redelivered forever).
* ``retry``: try the failing step again up to ``opts.max_retries`` more times, waiting
  ``opts.retry_delay`` seconds between attempts, then behave as ``halt``.

``transform(source, fn, opts)`` applies ``fn`` (sync or async) to each item of any async
iterable, in order, with the same policy. ``opts.timeout`` bounds each wait for the next
item of ``source`` (raising ``PortTimeoutError``) and each call of an async ``fn`` (a
call that times out is a failure the policy handles).

**Optional parts.**
``ACKNOWLEDGE``: consumer groups and ``ack`` (without it, ``ack`` and reading with a
group raise ``UnsupportedError``). ``PERSISTENT``: messages survive a restart.
``TENANT_SCOPED``: every source name is namespaced by the current tenant
([require_tenant][portfolio_core.ports.tenant.require_tenant], failing closed with
``TenantRequiredError``); no call made for one tenant reads, lists, counts or
acknowledges another tenant's messages. Message ids are unique only within a source, so
they collide across tenants: ``ack`` names the message with that id in the *caller's*
source, so acknowledging another tenant's id acknowledges the caller's own message with
that id, if any, and never the other tenant's. ``INSPECT``: the adapter also offers
``async sources() -> list[str]`` (the current namespace's source names, sorted) and
``async count(source) -> int`` (messages the source retains; 0 when it does not exist).

**Failures.** A backend that cannot be reached raises
[UnavailableError][portfolio_core.ports.errors.UnavailableError] (never a driver's own
connection error) from writing, reading, ``ack`` and the inspection calls; a write that
raised it wrote the items before the failing one and none after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from portfolio_core.ports.errors import InvalidInputError

__all__ = ["OnError", "Stream", "StreamCapability", "StreamMessage", "StreamOptions"]

T = TypeVar("T")
U = TypeVar("U")


class OnError(StrEnum):
    """What a reader or a transform does with an item that fails."""

    SKIP = "skip"
    """Drop the failing item and continue."""
    HALT = "halt"
    """Raise the failure."""
    RETRY = "retry"
    """Try again up to ``max_retries`` more times, then halt."""


class StreamCapability(StrEnum):
    """Optional parts of the Stream port."""

    ACKNOWLEDGE = "stream.acknowledge"
    """Consumer groups with acknowledgement and redelivery (at-least-once)."""
    PERSISTENT = "stream.persistent"
    """Messages survive a restart of the process."""
    TENANT_SCOPED = "stream.tenant_scoped"
    """Source names are namespaced per tenant; calls without a tenant fail closed."""
    INSPECT = "stream.inspect"
    """Offers ``sources()`` and ``count(source)``."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Options of one ``stream``/``write_stream``/``transform`` call.

    Attributes:
        buffer_size: messages a buffer holds before its producer waits (at least 1).
        timeout: seconds each wait may last before ``PortTimeoutError``; ``None``: forever.
        on_error: the error policy (see [OnError][portfolio_core.ports.stream.OnError]).
        max_retries: further attempts under ``OnError.RETRY`` (at least 0).
        retry_delay: seconds between retry attempts.
        group: consumer group to read in (needs ``ACKNOWLEDGE``); ``None`` reads alone.
        consumer: this reader's name within ``group``; ``None`` picks a unique one.
        claim_after: seconds a delivered, unacknowledged message stays with its consumer
            before another consumer of the group may receive it.
        follow: wait for new messages at the end of the source (``False`` ends there).
    """

    buffer_size: int = 64
    timeout: float | None = None
    on_error: OnError = OnError.HALT
    max_retries: int = 3
    retry_delay: float = 0.0
    group: str | None = None
    consumer: str | None = None
    claim_after: float = 30.0
    follow: bool = True

    def __post_init__(self) -> None:
        if self.buffer_size < 1:
            raise InvalidInputError("buffer_size must be at least 1", field="buffer_size")
        if self.timeout is not None and self.timeout < 0:
            raise InvalidInputError("timeout must be >= 0 or None", field="timeout")
        if self.max_retries < 0:
            raise InvalidInputError("max_retries must be >= 0", field="max_retries")
        if self.retry_delay < 0:
            raise InvalidInputError("retry_delay must be >= 0", field="retry_delay")
        if self.claim_after < 0:
            raise InvalidInputError("claim_after must be >= 0", field="claim_after")
        if self.group is not None and not self.group:
            raise InvalidInputError("group must be a non-empty string or None", field="group")
        if self.consumer is not None and not self.consumer:
            raise InvalidInputError("consumer must be a non-empty string or None", field="consumer")
        on_error: object = self.on_error
        if not isinstance(on_error, OnError):  # a plain string from a config file
            try:
                object.__setattr__(self, "on_error", OnError(str(on_error)))
            except ValueError:
                raise InvalidInputError(
                    f"on_error must be one of skip, halt, retry, not {on_error!r}",
                    field="on_error",
                ) from None


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """A message read from a source; ``id`` is unique and ordered within the source.

    ``source`` is the name the caller used (never a tenant-prefixed internal name).
    """

    id: str
    payload: Any
    source: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Stream(Protocol):
    """Async streams of messages; see the module docstring for the contract."""

    def stream(
        self, source: str, opts: StreamOptions | None = None
    ) -> AsyncIterator[StreamMessage]:
        """Iterate the messages of ``source`` (alone, or in ``opts.group``)."""
        ...

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        """Append every item to ``sink`` in order, waiting while its buffer is full.

        Returns the count written. Raises ``PortTimeoutError`` when a wait exceeds
        ``opts.timeout`` and ``InvalidInputError`` for a payload the adapter cannot store.
        """
        ...

    def transform(
        self,
        source: AsyncIterable[T],
        fn: Callable[[T], Awaitable[U]] | Callable[[T], U],
        opts: StreamOptions | None = None,
    ) -> AsyncIterator[U]:
        """Map ``fn`` over ``source`` in order, honouring ``opts.on_error`` and timeout."""
        ...

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        """Acknowledge ``message`` for ``opts.group``; idempotent.

        Raises ``UnsupportedError`` without capability ``ACKNOWLEDGE`` and
        ``InvalidInputError`` when ``opts.group`` is not set.
        """
        ...
