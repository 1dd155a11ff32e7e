"""EventStore: append-only streams of events with optimistic concurrency and a global log.

Contract
--------
Versions and positions
  * Events in a stream are numbered from 1 (``RecordedEvent.version``); a stream's version is
    the number of its events (0 for a stream that does not exist).
  * Every stored event also has a global ``position`` in the store-wide log (per tenant when
    the store is tenant scoped). Positions increase strictly in commit order; a reader of
    [EventStore.read_all][portfolio_core.ports.event_store.EventStore.read_all] that has read up to
    position P never later sees a new event
    at a position <= P (no event becomes visible "behind" a tailing reader). Positions may
    have gaps (a failed or rolled-back append can consume positions) unless the adapter
    declares ``GAPLESS``: then they are exactly 1, 2, 3, ... in every partition.

Appending
  * ``append(stream, events, expected_version)`` is atomic: all events are stored, or none,
    and the batch's events get consecutive versions (no other append interleaves).
  * ``expected_version`` is an int (the stream's current version, 0 meaning no events) or a
    [StreamState][portfolio_core.ports.event_store.StreamState]: ``ANY`` (no check), ``NO_STREAM``
    (the stream must not exist),
    ``STREAM_EXISTS`` (it must). A mismatch raises
    [WrongExpectedVersionError][portfolio_core.ports.errors.WrongExpectedVersionError] (with the
    actual
    version) and writes nothing. Of several concurrent appends with the same expected
    version, exactly one succeeds.
  * Idempotency: every event carries an ``id`` (a fresh UUIDv7 unless given). If the whole
    batch is already stored in that stream, in order, directly after ``expected_version``
    (or anywhere, with ``ANY``; anywhere but at the stream's start, with ``STREAM_EXISTS``,
    since the original append found the stream existing; at its start, with
    ``NO_STREAM``), the append succeeds without writing and returns the original result --
    also when later appends have followed it (a retry need not be of the stream's last
    batch). An id stored anywhere else, a retry whose ``expected_version`` does not fit
    where the batch is stored, or a batch overlapping a stored one only in part, raises
    [ConflictError][portfolio_core.ports.errors.ConflictError] and writes nothing.
  * Bad input raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] and writes
    nothing: an empty batch, an empty stream name, an id repeated in the batch, data or
    metadata that is not a JSON object following the stored-value rule of
    `portfolio_core.ports.values` (the Cache's rule: no non-serialisable value, NaN or
    infinity, no tuple and no non-str key -- which JSON would silently turn into a list and a
    string, so that the event read back would differ -- and at most ``MAX_VALUE_DEPTH``
    containers deep), an event larger than the adapter's ``max_event_bytes``. The size of
    an event is counted in UTF-8 bytes, not characters: the compact JSON of ``data`` and of
    ``metadata`` (separators ``,`` and ``:``, no spaces, non-ASCII characters written as
    themselves) plus ``type`` and ``id``; an event of exactly ``max_event_bytes`` is
    stored. The batch itself may be any sequence of
    [NewEvent][portfolio_core.ports.event_store.NewEvent] (a list or a tuple);
    tuples *inside* data or metadata are refused as said above.
  * No string may contain the NUL character U+0000: not the stream name, an event's type,
    id, correlation or causation id, nor any key or string value of ``data`` or
    ``metadata`` at any depth. Such a batch raises
    [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] whose ``field`` names the
    part
    (``stream``, ``type``, ``id``, ``correlation_id``, ``causation_id``, ``data``,
    ``metadata``) and writes nothing, in every adapter alike: PostgreSQL's ``jsonb`` and
    ``text`` cannot hold U+0000, and rewriting it (dropping it, or storing an escape) would
    silently change the caller's data. The same strings in a query or subscription filter
    raise InvalidInputError too (no stored event can contain them).
  * Likewise every string must be Unicode text: one holding a lone surrogate (U+D800 to
    U+DFFF, e.g. from ``surrogateescape`` decoding) cannot be stored as UTF-8 and raises
    InvalidInputError naming the part, writes nothing, in every adapter alike.

Reading
  * ``read`` of a stream that does not exist raises
    [NotFoundError][portfolio_core.ports.errors.NotFoundError]. Forwards it returns versions
    ``>= from_version``; backwards, versions ``<= from_version`` (0 meaning the last) in
    descending order; at most ``limit``.
  * Results are snapshots: ``read``, ``read_all`` and ``query`` return a new list the caller
    may mutate; later appends do not change it, and changing a returned event's data does
    not change the store.
  * ``recorded_at`` never decreases along positions within a partition (an adapter takes
    the later of its clock and the previous event's time), so the events of a time range
    are one run of consecutive positions.
  * ``read_all`` returns events in position order, ``query`` too unless ``backwards``
    (then in descending order; a subscription filter cannot be backwards nor bounded by
    ``before_position``: InvalidInputError). ``query`` (capability ``QUERY``) returns the
    events matching *every* given filter (filters combine with AND, and so do the fields of
    one ``data`` or ``metadata`` filter): event types, streams, correlation id,
    ``since <= recorded_at < until``, and equality of top-level fields of ``data`` and
    ``metadata`` as JSON values (``true`` does not equal ``1``; ``1`` equals ``1.0``;
    ``"1"`` equals neither).
  * ``query.where`` adds conditions on nested JSON paths
    ([Where][portfolio_core.ports.event_store.Where]), all of which must
    hold. A path is ``data`` or ``metadata`` then one or more object keys, dot-separated
    (``data.customer.tier``); each key is 1-64 of ``A-Z a-z 0-9 _ -``, at most 16 keys.
    Operators: ``exists`` (the path resolves, to any value including null); ``==`` and
    ``!=`` against a scalar (str, int, float, bool or None), equal as JSON values (a bool
    equals only a bool; ``1`` equals ``1.0``), ``!=`` needing the path to exist; ``<``,
    ``<=``, ``>``, ``>=`` against a number (not a bool) or a str, matching only stored
    values of the same kind (numbers numerically, strings by code point); ``in`` against a
    non-empty list of at most 100 scalars (``==`` any of them). Anything else raises
    InvalidInputError with ``field="where"``. The SQL adapters evaluate every condition in
    the database (SQLite JSON1, PostgreSQL jsonb); the memory adapter is the reference.
  * What the issue's "richer queries" ask for, and where it is: get by event id is
    ``query(EventQuery(ids=...))``; read backwards is ``read(direction=BACKWARDS)`` for a
    stream and ``EventQuery(backwards=True)`` for the log; pagination by position is
    ``from_position``/``before_position`` with ``limit``; count is ``count(query)`` below.
  * ``count(query)`` (capability ``COUNT``,
    [CountingEventStore][portfolio_core.ports.event_store.CountingEventStore]) is the number
    of events ``query(query)`` would return, ``limit`` and every filter included
    (``len(await store.query(q))``, without reading the events where the adapter can
    count in the database); bad input raises what ``query`` raises.

Subscribing
  * ``subscribe`` (capability ``SUBSCRIBE``) first delivers stored events from
    ``from_position`` (catch-up) then new ones as they commit (live), in position order, at
    least once; ``stream`` and ``filter`` narrow what is delivered. The subscription's
    ``checkpoint`` is the position of the last event the handler finished; persisting it and
    subscribing again from ``checkpoint + 1`` loses nothing. Delivery is pulled in bounded
    batches: a slow handler slows delivery rather than dropping events or buffering without
    bound. ``on_error`` decides what a handler exception does: ``stop`` the subscription
    (keeping the exception in ``error``; ``wait_until`` re-raises it), ``retry`` the event
    (with backoff, at most 10 attempts in all; when they all fail the subscription stops
    exactly as with ``stop``: the error is kept, ``wait_until`` re-raises it, the checkpoint
    stays before the event and no later event is delivered), or ``skip`` it.
    ``unsubscribe`` is idempotent.
  * Within one subscription every event is delivered once, in position order, including
    the events committed while catch-up is running (the hand-over from catch-up to live
    neither repeats nor skips an event); "at least once" is about resuming from a saved
    checkpoint.
  * ``wait_until(position, timeout)`` raises
    [PortTimeoutError][portfolio_core.ports.errors.PortTimeoutError] (never the built-in
    ``TimeoutError`` alone) when the checkpoint has not reached ``position`` in time.
  * With a ``stream`` or ``filter``, the checkpoint is the position of the last *matching*
    event handled; it may also move past events the filter leaves out, never past one it
    has not examined. Resuming from ``checkpoint + 1`` loses no matching event.

Failures
  * A backend that cannot be reached raises
    [UnavailableError][portfolio_core.ports.errors.UnavailableError] (never the driver's own
    exception); an append that raises it writes nothing, and the store serves calls again
    once the backend is back. A subscription whose reads fail that way stops with the error
    in ``error`` (``wait_until`` re-raises it); subscribing again from ``checkpoint + 1``
    loses nothing.

Tenancy
  * An adapter declaring ``TENANT_SCOPED`` and built with ``tenant_scoped=True`` reads
    [require_tenant][portfolio_core.ports.tenant.require_tenant] on every call (no tenant:
    [TenantRequiredError][portfolio_core.ports.errors.TenantRequiredError]) and keeps each tenant's
    streams,
    ids and positions apart: no call made for one tenant reads, queries, lists or counts
    another tenant's events; the same event id or stream name in two tenants are two
    different things; positions are numbered per tenant. A tenant id and a stream name that
    contain the adapter's own separators (``:``, ``/``) never make two tenants' streams
    collide. A call with no tenant raises before touching anything. A subscription keeps
    the tenant current when it was made and delivers only that tenant's events.
"""

from __future__ import annotations

import os
import time
from _thread import allocate_lock
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "AppendResult",
    "Direction",
    "EventHandler",
    "EventQuery",
    "EventStore",
    "CountingEventStore",
    "EventStoreCapability",
    "ExpectedVersion",
    "MAX_WHERE_IN",
    "NewEvent",
    "OnHandlerError",
    "RecordedEvent",
    "StreamState",
    "Subscription",
    "Where",
    "WhereOp",
]

MAX_WHERE_IN = 100
"""The most values an ``in`` condition may list."""


class StreamState(StrEnum):
    """Symbolic expected versions."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"


ExpectedVersion = int | StreamState


class Direction(StrEnum):
    FORWARDS = "forwards"
    BACKWARDS = "backwards"


class OnHandlerError(StrEnum):
    STOP = "stop"
    RETRY = "retry"
    SKIP = "skip"


class EventStoreCapability(StrEnum):
    SUBSCRIBE = "event_store.subscribe"
    QUERY = "event_store.query"
    PERSISTENT = "event_store.persistent"
    SHARED = "event_store.shared"
    """Several processes may append and read concurrently."""
    GAPLESS = "event_store.gapless"
    TENANT_SCOPED = "event_store.tenant_scoped"
    COUNT = "event_store.count"
    """``count(query)``: the adapter is a
    [CountingEventStore][portfolio_core.ports.event_store.CountingEventStore]."""


_ID_BATCH = 512
# The random parts of ids are drawn from the OS this many at a time, which costs a fraction
# of one urandom call and one formatting per id. The 10 random bytes of each are masked to
# version 7 and variant 10 (74 random bits remain) and written as "7xxx-Vxxx-xxxxxxxxxxxx",
# the text after an id's timestamp.
_ID_MASK = int.from_bytes(bytes.fromhex("0fff3fffffffffffffff") * _ID_BATCH, "big")
_ID_BITS = int.from_bytes(bytes.fromhex("70008000000000000000") * _ID_BATCH, "big")


def _random_tails() -> list[str]:
    """``_ID_BATCH`` fresh id tails ("7xxx-Vxxx-xxxxxxxxxxxx", 74 random bits each)."""
    n = _ID_BATCH
    raw = int.from_bytes(os.urandom(10 * n), "big") & _ID_MASK | _ID_BITS
    # "7xxx-Vxxx-xxxx-xxxx-xxxx-" per tail (25 characters): drop the last two inner
    # dashes, then the dash after each tail separates it from the next.
    text = bytearray(raw.to_bytes(10 * n, "big").hex("-", 2).encode())
    del text[19::25]
    del text[14::24]
    text[22::23] = b" " * (n - 1)
    return text.decode().split(" ")


_id_lock = allocate_lock()
_id_tails: Iterator[str] = iter(())
_id_stamp = (-1, "")  # the last millisecond an id was made in, and its text


def _new_id() -> str:
    """A fresh time-ordered UUID (version 7: 48-bit Unix milliseconds, then 74 random bits
    from the OS's CSPRNG) in canonical text form. Ids made later sort later (to the
    millisecond), so a store's unique index on ids grows at its right edge instead of being
    written all over. Safe to call from any thread; a forked child never reuses random bits
    drawn before the fork."""
    global _id_stamp, _id_tails
    ms = time.time_ns() // 1_000_000
    stamp = _id_stamp
    if stamp[0] != ms:
        h = f"{ms:012x}"
        _id_stamp = stamp = (ms, f"{h[:8]}-{h[8:]}-")
    lock = _id_lock
    lock.acquire()
    try:
        for tail in _id_tails:
            return stamp[1] + tail
        _id_tails = tails = iter(_random_tails())
        return stamp[1] + next(tails)
    finally:
        lock.release()


def _forget_ids_after_fork() -> None:
    """In a forked child: drop the parent's unused random bits (the child must not hand out
    the ids the parent will), and the lock, which another parent thread may have held."""
    global _id_lock, _id_tails
    _id_lock = allocate_lock()
    _id_tails = iter(())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids_after_fork)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``id`` defaults to a fresh time-ordered UUID (version 7); supply
    your own to make retries idempotent."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=_new_id)
    correlation_id: str | None = None
    causation_id: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """A stored event with its stream version, global position and commit time (UTC)."""

    id: str
    stream: str
    type: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    version: int
    position: int
    recorded_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The stream's version after the append and the global positions of the batch."""

    stream: str
    version: int
    positions: tuple[int, ...]


class WhereOp(StrEnum):
    EXISTS = "exists"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"


@dataclass(frozen=True, slots=True)
class Where:
    """One condition of `EventQuery.where` on a JSON path (see the module docstring):
    ``Where("data.customer.tier", "==", "gold")``, ``Where("metadata.trace", "exists")``."""

    path: str
    op: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A conjunction of filters; ``None`` or empty means "no constraint" for that field.

    ``data`` and ``metadata`` match by equality on top-level JSON fields; ``where`` adds
    conditions on nested paths; ``ids`` keeps the events with those ids (get by id). ``since``
    is inclusive and ``until`` exclusive, on ``recorded_at``; ``from_position`` inclusive and
    ``before_position`` exclusive, on ``position``. ``backwards`` returns the matches in
    descending position order (``limit`` keeps the last ones): page backwards by passing the
    smallest position seen as the next ``before_position``, forwards by passing the largest
    seen + 1 as the next ``from_position``.
    """

    types: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    from_position: int = 1
    limit: int | None = None
    where: tuple[Where, ...] = ()
    ids: frozenset[str] = frozenset()
    before_position: int | None = None
    backwards: bool = False


EventHandler = Callable[[RecordedEvent], Awaitable[None]]


@runtime_checkable
class Subscription(Protocol):
    """A live subscription handle."""

    @property
    def id(self) -> str: ...

    @property
    def checkpoint(self) -> int:
        """Position of the last event the handler finished (0 before any)."""
        ...

    @property
    def error(self) -> BaseException | None:
        """The handler exception that stopped the subscription, if any."""
        ...

    async def wait_until(self, position: int, timeout: float | None = None) -> None:
        """Wait until ``checkpoint >= position``; raises PortTimeoutError after ``timeout``."""
        ...


@runtime_checkable
class EventStore(Protocol):
    """Async event store; see the module docstring for every clause."""

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        """Append ``events`` atomically to ``stream``."""
        ...

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        """Events of ``stream`` from ``from_version`` (backwards: down from it, 0 = last)."""
        ...

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """Events of every stream with ``position >= from_position``, in position order."""
        ...

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        """Events matching every filter of ``query``, in position order."""
        ...

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        """Deliver events (of one stream, or all) to ``handler``: catch-up, then live."""
        ...

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to the subscription; idempotent."""
        ...


@runtime_checkable
class CountingEventStore(EventStore, Protocol):
    """An event store that counts the matches of a query (capability ``COUNT``)."""

    async def count(self, query: EventQuery) -> int:
        """How many events ``query(query)`` would return (see the module docstring)."""
        ...
