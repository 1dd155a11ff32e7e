"""What every EventStore adapter shares: input validation, the JSON codec, the expected
version check, query matching in Python, and the polling subscription loop.

The memory adapter is the executable specification; the file and SQL adapters reuse these
pieces so that validation and subscription semantics cannot drift apart between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from portfolio_core.adapters._shared.codec import check_json_value
from portfolio_core.ports.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PortTimeoutError,
    WrongExpectedVersionError,
)
from portfolio_core.ports.event_store import (
    EventHandler,
    EventQuery,
    ExpectedVersion,
    NewEvent,
    OnHandlerError,
    RecordedEvent,
    StreamState,
    Subscription,
)
from portfolio_core.ports.values import MAX_VALUE_DEPTH

PORT = "EventStore"
DEFAULT_MAX_EVENT_BYTES = 1_048_576
MAX_STREAM_NAME = 255

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_encode = _ENCODER.encode


def _chunk_encoder() -> Callable[[object, int], Sequence[str]]:
    """``f(value, 0)``: the chunks of ``_ENCODER.encode(value)`` for a dict, the same text and
    errors, except that a circular value exceeds the recursion limit (RecursionError)."""
    try:
        from _json import make_encoder
    except ImportError:  # no C accelerator
        return lambda value, _level: (_encode(value),)
    # What JSONEncoder.iterencode builds on every call (for ensure_ascii=False, no indent),
    # built once; without the markers dict (cycle detection) it keeps no state between calls.
    e = _ENCODER
    return make_encoder(
        None,
        e.default,
        json.encoder.encode_basestring,
        None,
        e.key_separator,
        e.item_separator,
        e.sort_keys,
        e.skipkeys,
        e.allow_nan,
    )


_encode_chunks = _chunk_encoder()


def dumps(value: Mapping[str, Any], what: str) -> str:
    """Encode ``value`` as compact JSON or raise InvalidInputError naming ``what``."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"event {what} must be a JSON object (a mapping)", field=what)
    for key, item in value.items():
        if type(key) is not str:
            raise InvalidInputError(
                f"event {what} has a non-string key {key!r}", field=what, port=PORT
            )
        check_json_value(item, field=what, top=False, text=False, depth=2)
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"event {what} is not JSON-serialisable: {exc}", field=what, port=PORT
        ) from exc


def loads(text: str | bytes) -> dict[str, Any]:
    if text == "{}":
        return {}
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def validate_stream(stream: object) -> str:
    if not isinstance(stream, str) or not stream:
        raise InvalidInputError("stream name must be a non-empty string", field="stream", port=PORT)
    if len(stream) > MAX_STREAM_NAME:
        raise InvalidInputError(
            f"stream name longer than {MAX_STREAM_NAME} characters", field="stream", port=PORT
        )
    if "\x00" in stream:
        raise InvalidInputError("stream name contains NUL", field="stream", port=PORT)
    if not is_text(stream):
        raise InvalidInputError(
            "stream name contains a lone surrogate, which is not Unicode text",
            field="stream",
            port=PORT,
        )
    return stream


def is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text, i.e. encodable as UTF-8: no lone surrogate
    (U+D800 to U+DFFF, which ``"\\udc80"`` escapes and ``surrogateescape`` decoding make).
    Constant time for ASCII strings."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def validate_expected(expected: object) -> ExpectedVersion:
    if isinstance(expected, StreamState):
        return expected
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise InvalidInputError(
            "expected_version must be an int >= 0 or a StreamState",
            field="expected_version",
            port=PORT,
        )
    return expected


class EncodedEvent(NamedTuple):
    """A validated new event with its JSON already encoded (what adapters store).

    A named tuple: immutable, and built several times cheaper than a frozen dataclass,
    which matters once per appended event."""

    id: str
    type: str
    data: str
    metadata: str
    correlation_id: str | None
    causation_id: str | None


def encode_batch(
    stream: str, events: Sequence[NewEvent], max_event_bytes: int
) -> list[EncodedEvent]:
    """Validate and encode a whole batch before anything is written; raise InvalidInputError
    on the first problem: empty batch, bad event, duplicate id in the batch, oversized event;
    and only if the batch has none of those, on the first string containing U+0000 (see
    `refuse_nul`), then on the first string that is not Unicode text (see
    `refuse_surrogates`)."""
    validate_stream(stream)
    if events.__class__ is not list and (
        isinstance(events, NewEvent) or not isinstance(events, Sequence)
    ):
        raise InvalidInputError("events must be a sequence of NewEvent", field="events", port=PORT)
    if not events:
        raise InvalidInputError("cannot append an empty batch", field="events", port=PORT)
    out: list[EncodedEvent] = []
    append = out.append
    seen: set[str] = set()
    remember = seen.add
    new_tuple = tuple.__new__
    nul_from = -1  # the first event that may contain U+0000, checked after the others
    text_from = -1  # the first event that may hold a lone surrogate, likewise
    for i, event in enumerate(events):
        if not isinstance(event, NewEvent):
            raise InvalidInputError(f"events[{i}] is not a NewEvent", field="events", port=PORT)
        type_, id_ = event.type, event.id
        if not isinstance(type_, str) or not type_:
            raise InvalidInputError(f"events[{i}].type must be non-empty", field="type", port=PORT)
        if not isinstance(id_, str) or not id_:
            raise InvalidInputError(f"events[{i}].id must be non-empty", field="id", port=PORT)
        if id_ in seen:
            raise InvalidInputError(
                f"event id {id_!r} appears twice in one batch", field="id", port=PORT
            )
        remember(id_)
        corr, caus = event.correlation_id, event.causation_id
        if corr is not None and not isinstance(corr, str):
            raise InvalidInputError(
                f"events[{i}].correlation_id must be a string", field="correlation_id"
            )
        if caus is not None and not isinstance(caus, str):
            raise InvalidInputError(
                f"events[{i}].causation_id must be a string", field="causation_id"
            )
        data = _encode_object(event.data, "data")
        metadata = _encode_object(event.metadata, "metadata")
        size = len(data) + len(metadata) + len(type_) + len(id_)
        if size * 4 > max_event_bytes:  # only then can the UTF-8 size exceed the limit
            size = sum(len(s.encode()) for s in (data, metadata, type_, id_))
        if size > max_event_bytes:
            raise InvalidInputError(
                f"events[{i}] is {size} bytes, more than max_event_bytes={max_event_bytes}",
                field="events",
                port=PORT,
            )
        # The JSON encoder writes U+0000 as the escape \u0000, so JSON without that text
        # holds none (with it, refuse_nul walks the value to be sure).
        if nul_from < 0 and (
            "\x00" in type_
            or "\x00" in id_
            or "\\u0000" in data
            or "\\u0000" in metadata
            or (corr is not None and "\x00" in corr)
            or (caus is not None and "\x00" in caus)
        ):
            nul_from = i
        if text_from < 0 and not (
            data.isascii()
            and metadata.isascii()
            and type_.isascii()
            and id_.isascii()
            and (corr is None or corr.isascii())
            and (caus is None or caus.isascii())
        ):
            text_from = i
        # EncodedEvent(...) without the named tuple's Python-level __new__
        append(new_tuple(EncodedEvent, (id_, type_, data, metadata, corr, caus)))
    if nul_from >= 0:
        for i in range(nul_from, len(out)):
            refuse_nul(i, events[i], out[i])
    if text_from >= 0:
        for i in range(text_from, len(out)):
            refuse_surrogates(i, events[i], out[i])
    return out


_NESTED: frozenset[type[Any]] = frozenset((dict, list, tuple))


def _check_containers(value: Any, what: str, depth: int) -> None:
    """The part of the stored-value rule the JSON encoder would not enforce: no tuple (it
    writes a list), no non-str key (it writes a string), at most MAX_VALUE_DEPTH deep.
    Scalars and other types are left to the encoder, which refuses what is not JSON."""
    cls = value.__class__
    if cls is tuple:
        raise InvalidInputError(
            f"event {what} holds a tuple, which JSON would turn into a list (got tuple); "
            "pass a list",
            field=what,
            port=PORT,
        )
    if depth > MAX_VALUE_DEPTH:
        raise InvalidInputError(
            f"event {what} is nested more than {MAX_VALUE_DEPTH} containers deep",
            field=what,
            port=PORT,
        )
    if cls is dict:
        for key, item in value.items():
            if key.__class__ is not str:
                raise InvalidInputError(
                    f"event {what} has a non-string key {key!r}", field=what, port=PORT
                )
            if item.__class__ in _NESTED:
                _check_containers(item, what, depth + 1)
    else:
        for item in value:
            if item.__class__ in _NESTED:
                _check_containers(item, what, depth + 1)


def _encode_object(value: Mapping[str, Any], what: str) -> str:
    """``dumps(value, what)``, with a shortcut for plain dicts (the usual case), after the
    stored-value rule of `portfolio_core.ports.values` (no tuple, no non-str key, at
    most MAX_VALUE_DEPTH deep; text is checked later, see `encode_batch`)."""
    if value.__class__ is dict:
        if not value:
            return "{}"
        _check_containers(value, what, 1)
        try:
            return "".join(_encode_chunks(value, 0))
        except (TypeError, ValueError, RecursionError):
            pass  # dumps raises the specific error
    return dumps(value, what)


def check_expected(stream: str, expected: ExpectedVersion, actual: int) -> None:
    """Raise WrongExpectedVersionError unless ``actual`` satisfies ``expected``."""
    if expected is StreamState.ANY:
        return
    if expected is StreamState.NO_STREAM:
        ok = actual == 0
    elif expected is StreamState.STREAM_EXISTS:
        ok = actual > 0
    else:
        ok = actual == expected
    if not ok:
        shown = expected.value if isinstance(expected, StreamState) else expected
        raise WrongExpectedVersionError(stream, shown, actual)


def idempotent_replay(
    stream: str,
    batch: Sequence[EncodedEvent],
    expected: ExpectedVersion,
    stored: Sequence[tuple[str, int, int] | None],
) -> tuple[int, tuple[int, ...]] | None:
    """Decide an append some of whose event ids may already be stored.

    ``stored`` holds, for each event of the batch in order, ``(stream, version, position)``
    of the stored event with that id, or ``None``. Returns ``None`` when no id is stored
    (a normal append); ``(version, positions)`` of the original append when the whole batch
    is stored, in order, in ``stream`` directly after ``expected`` (an exact retry); and
    raises ConflictError otherwise (an id reused elsewhere, or a partial overlap).
    """
    if all(s is None for s in stored):
        return None
    rows = [s for s in stored if s is not None]
    if len(rows) == len(batch):
        first_version = rows[0][1]
        contiguous = all(s == stream and v == first_version + i for i, (s, v, _) in enumerate(rows))
        if contiguous and (
            expected is StreamState.ANY
            or (isinstance(expected, int) and expected == first_version - 1)
            or (expected is StreamState.NO_STREAM and first_version == 1)
            or (expected is StreamState.STREAM_EXISTS and first_version > 1)
        ):
            return rows[-1][1], tuple(p for _, _, p in rows)
    index = next(i for i, s in enumerate(stored) if s is not None)
    other_stream, other_version, _ = rows[0]
    raise ConflictError(
        f"event id {batch[index].id!r} is already stored in stream {other_stream!r} at "
        f"version {other_version}, and the batch is not an exact retry of that append",
        port=PORT,
    )


def refuse_nul(i: int, event: NewEvent, encoded: EncodedEvent) -> None:
    """Raise InvalidInputError naming the field when a string of ``event`` (type, id,
    correlation or causation id, any key or string value of data or metadata) contains
    U+0000. PostgreSQL's jsonb and text cannot hold it; every adapter refuses it alike.

    The JSON encoder always writes U+0000 as the escape ``\\u0000``, so encoded JSON
    without that text holds none; only then is the value walked to find it."""
    for name in ("type", "id", "correlation_id", "causation_id"):
        value = getattr(encoded, name)
        if value is not None and "\x00" in value:
            _nul_error(f"events[{i}].{name}", name)
    for name in ("data", "metadata"):
        if "\\u0000" in getattr(encoded, name):
            where = _nul_path(getattr(event, name), f"events[{i}].{name}")
            if where is not None:
                _nul_error(where, name)


def refuse_surrogates(i: int, event: NewEvent, encoded: EncodedEvent) -> None:
    """Raise InvalidInputError naming the field when a string of ``event`` (type, id,
    correlation or causation id, any key or string value of data or metadata) holds a lone
    surrogate: it is not Unicode text, SQLite and PostgreSQL cannot store it as UTF-8, and
    every adapter refuses it alike rather than fail in the driver or store it in one adapter
    only."""
    for name in ("type", "id", "correlation_id", "causation_id"):
        value = getattr(encoded, name)
        if value is not None and not is_text(value):
            _surrogate_error(f"events[{i}].{name}", name)
    for name in ("data", "metadata"):
        if not is_text(getattr(encoded, name)):
            where = _bad_string_path(
                getattr(event, name), f"events[{i}].{name}", lambda v: not is_text(v)
            )
            _surrogate_error(where or f"events[{i}].{name}", name)


def _nul_path(value: object, path: str) -> str | None:
    """The path of the first string (key or value) inside ``value`` containing U+0000."""
    return _bad_string_path(value, path, lambda v: "\x00" in v)


def _bad_string_path(value: object, path: str, bad: Callable[[str], bool]) -> str | None:
    """The path of the first string (key or value) inside ``value`` for which ``bad``."""
    if isinstance(value, str):
        return path if bad(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and bad(key):
                return f"{path} key {key!r}"
            found = _bad_string_path(item, f"{path}[{key!r}]", bad)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for k, item in enumerate(value):
            found = _bad_string_path(item, f"{path}[{k}]", bad)
            if found is not None:
                return found
    return None


def _surrogate_error(what: str, field: str) -> None:
    raise InvalidInputError(
        f"{what} contains a lone surrogate, which is not Unicode text and cannot be stored",
        field=field,
        port=PORT,
    )


def _nul_error(what: str, field: str) -> None:
    raise InvalidInputError(
        f"{what} contains the NUL character U+0000, which is not accepted",
        field=field,
        port=PORT,
    )


def json_equal(a: object, b: object) -> bool:
    """JSON value equality: numbers compare by value, booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def validate_query(query: EventQuery) -> None:
    if not isinstance(query, EventQuery):
        raise InvalidInputError("query must be an EventQuery", field="query", port=PORT)
    if query.from_position < 1:
        raise InvalidInputError("from_position must be >= 1", field="from_position", port=PORT)
    if query.limit is not None and query.limit < 0:
        raise InvalidInputError("limit must be >= 0", field="limit", port=PORT)
    for what in ("data", "metadata"):
        dumps(getattr(query, what), what)
        where = _nul_path(getattr(query, what), f"query {what}")
        if where is not None:
            _nul_error(where, what)
        where = _bad_string_path(getattr(query, what), f"query {what}", lambda v: not is_text(v))
        if where is not None:
            _surrogate_error(where, what)
    for what in ("types", "streams"):
        for value in getattr(query, what):
            if isinstance(value, str) and "\x00" in value:
                _nul_error(f"query {what}", what)
            if isinstance(value, str) and not is_text(value):
                _surrogate_error(f"query {what}", what)
    if isinstance(query.correlation_id, str) and "\x00" in query.correlation_id:
        _nul_error("query correlation_id", "correlation_id")
    if isinstance(query.correlation_id, str) and not is_text(query.correlation_id):
        _surrogate_error("query correlation_id", "correlation_id")


def matches(event: RecordedEvent, query: EventQuery) -> bool:
    """Whether ``event`` satisfies every filter of ``query`` (position and limit excluded)."""
    if query.types and event.type not in query.types:
        return False
    if query.streams and event.stream not in query.streams:
        return False
    if query.correlation_id is not None and event.correlation_id != query.correlation_id:
        return False
    if query.since is not None and event.recorded_at < query.since:
        return False
    if query.until is not None and event.recorded_at >= query.until:
        return False
    for key, want in query.data.items():
        if key not in event.data or not json_equal(event.data[key], want):
            return False
    for key, want in query.metadata.items():
        if key not in event.metadata or not json_equal(event.metadata[key], want):
            return False
    return True


def validate_read_args(from_version: int, limit: int | None) -> None:
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 0:
        raise InvalidInputError("from_version must be an int >= 0", field="from_version")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InvalidInputError("limit must be an int >= 0", field="limit")


def validate_position(from_position: int, limit: int | None) -> None:
    if isinstance(from_position, bool) or not isinstance(from_position, int) or from_position < 1:
        raise InvalidInputError("from_position must be an int >= 1", field="from_position")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InvalidInputError("limit must be an int >= 0", field="limit")


# --------------------------------------------------------------------------- subscriptions

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


class PollingSubscription:
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
        self._id = f"sub-{next(_ids)}-{uuid.uuid4().hex[:8]}"
        self._handler = handler
        self._fetch = fetch
        self._next = max(1, from_position)
        self._checkpoint = self._next - 1
        self._on_error = OnHandlerError(on_error)
        self._wakeup = wakeup
        self._poll = poll_interval
        self._batch = max(1, batch_size)
        self._max_retries = max_retries
        self._retry_delay = retry_delay
        self._error: BaseException | None = None
        self._progress = asyncio.Condition()
        self._woken = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        wakeup.register(self._loop, self._woken)
        self._task = self._loop.create_task(self._run(), name=self._id)

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

    def wake(self) -> None:
        self._woken.set()

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
                port=PORT,
            ) from exc
        if self._checkpoint < position and self._error is not None:
            raise self._error

    async def _advance(self, position: int) -> None:
        async with self._progress:
            self._checkpoint = position
            self._progress.notify_all()

    async def _deliver(self, event: RecordedEvent) -> bool:
        """Run the handler on one event; False means the subscription stops."""
        attempts = 0
        while True:
            try:
                await self._handler(event)
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
            async with self._progress:
                self._progress.notify_all()

    async def stop(self) -> None:
        self._stopped = True
        self._wakeup.unregister(self._loop, self._woken)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._progress:
            self._progress.notify_all()


# --------------------------------------------------------------------- in-process index


@dataclass(slots=True)
class IndexedRow:
    """One stored event: its encoded body and where it sits."""

    event: EncodedEvent
    stream: str
    version: int
    position: int
    recorded_at: int  # microseconds since the epoch


@dataclass(slots=True)
class _Partition:
    rows: list[IndexedRow] = field(default_factory=list)
    streams: dict[str, list[int]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    last_time: int = 0


def row_to_event(row: IndexedRow) -> RecordedEvent:
    e = row.event
    return RecordedEvent(
        id=e.id,
        stream=row.stream,
        type=e.type,
        data=loads(e.data),
        metadata=loads(e.metadata),
        version=row.version,
        position=row.position,
        recorded_at=datetime.fromtimestamp(row.recorded_at / 1_000_000, UTC),
        correlation_id=e.correlation_id,
        causation_id=e.causation_id,
    )


class EventIndex:
    """Streams and the global log of each partition, in process (not thread-safe: callers
    hold their own lock). The memory adapter is this index; the file adapter rebuilds it from
    its log on open. Positions are gapless per partition."""

    def __init__(self) -> None:
        self._parts: dict[str, _Partition] = {}

    def _part(self, tenant: str) -> _Partition:
        part = self._parts.get(tenant)
        if part is None:
            part = self._parts[tenant] = _Partition()
        return part

    def plan(
        self,
        tenant: str,
        stream: str,
        batch: Sequence[EncodedEvent],
        expected: ExpectedVersion,
    ) -> list[IndexedRow] | tuple[int, tuple[int, ...]]:
        """The rows an append would add, or the original result of an exact retry.

        Raises WrongExpectedVersionError / ConflictError and changes nothing.
        """
        part = self._part(tenant)
        if any(e.id in part.ids for e in batch):
            stored: list[tuple[str, int, int] | None] = []
            for e in batch:
                i = part.ids.get(e.id)
                r = None if i is None else part.rows[i]
                stored.append(None if r is None else (r.stream, r.version, r.position))
            replay = idempotent_replay(stream, batch, expected, stored)
            if replay is not None:
                return replay
        current = len(part.streams.get(stream, ()))
        check_expected(stream, expected, current)
        now = max(int(time.time() * 1_000_000), part.last_time)
        start = len(part.rows)
        return [
            IndexedRow(e, stream, current + k + 1, start + k + 1, now) for k, e in enumerate(batch)
        ]

    def add(self, tenant: str, rows: Sequence[IndexedRow]) -> None:
        """Store planned (or recovered) rows; positions must continue the partition's log."""
        part = self._part(tenant)
        for row in rows:
            index = len(part.rows)
            if row.position != index + 1:
                raise ValueError(f"position {row.position} does not follow {index}")
            part.rows.append(row)
            part.ids[row.event.id] = index
            part.streams.setdefault(row.stream, []).append(index)
            part.last_time = max(part.last_time, row.recorded_at)

    def read(
        self, tenant: str, stream: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[IndexedRow]:
        part = self._part(tenant)
        indices = part.streams.get(stream)
        if indices is None:
            raise NotFoundError(f"no stream {stream!r}", key=stream, port=PORT)
        if not backwards:
            chosen = indices[max(from_version, 1) - 1 :]
        else:
            top = len(indices) if from_version == 0 else min(from_version, len(indices))
            chosen = indices[:top][::-1]
        if limit is not None:
            chosen = chosen[:limit]
        return [part.rows[i] for i in chosen]

    def read_all(self, tenant: str, from_position: int, limit: int | None) -> list[IndexedRow]:
        part = self._part(tenant)
        end = None if limit is None else from_position - 1 + limit
        return part.rows[from_position - 1 : end]


def query_rows(rows: Sequence[IndexedRow], query: EventQuery) -> list[RecordedEvent]:
    """Events of ``rows`` (a position-ordered slice) matching ``query``, up to its limit."""
    out: list[RecordedEvent] = []
    for row in rows:
        if query.limit is not None and len(out) >= query.limit:
            break
        if query.types and row.event.type not in query.types:
            continue
        if query.streams and row.stream not in query.streams:
            continue
        event = row_to_event(row)
        if matches(event, query):
            out.append(event)
    return out


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


def validate_subscribe(
    stream: str | None, filter: EventQuery | None, from_position: object
) -> None:
    if stream is not None:
        validate_stream(stream)
    if filter is not None:
        validate_query(filter)
    if isinstance(from_position, bool) or not isinstance(from_position, int):
        raise InvalidInputError("from_position must be an int", field="from_position", port=PORT)
