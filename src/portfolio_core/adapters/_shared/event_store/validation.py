"""Input validation and encoding shared by every EventStore adapter: stream names, expected
versions, read and query arguments, and new events checked and encoded as compact JSON
(`encode_batch`) before anything is written, each problem raising InvalidInputError.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from json.scanner import make_scanner
from typing import Any, NamedTuple

from portfolio_core.adapters._shared.codec import check_json_value, is_text
from portfolio_core.adapters._shared.event_store.where import check_where
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.event_store import EventQuery, ExpectedVersion, NewEvent, StreamState
from portfolio_core.ports.values import MAX_VALUE_DEPTH

PORT = "EventStore"
DEFAULT_MAX_EVENT_BYTES = 1_048_576
MAX_STREAM_NAME = 255

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_encode = _ENCODER.encode


def _chunk_encoder() -> Callable[[object, int], Sequence[str]]:
    """``f(value, 0)``: the chunks of ``_ENCODER.encode(value)`` for a dict, the same text and
    errors, except that a circular value exceeds the recursion limit (RecursionError).

    A CPython internal (``_json.make_encoder``) kept because ``bench_event_store``'s
    internals line shows it pays: about half the time of ``JSONEncoder.encode`` per event
    body, a few percent of an append's time per event when the disk is fast."""
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


_DECODER = json.JSONDecoder()
_scan = make_scanner(_DECODER)  # type: ignore[arg-type]


def decode(text: str) -> Any:
    """The value of the JSON ``text``; raises what ``JSONDecoder().decode`` raises.

    Calls the scanner (``json.scanner.make_scanner``, a CPython internal) directly:
    ``bench_event_store``'s internals line shows about a third of ``json.loads``' time per
    event body, a large share of ``read_all``'s time per event."""
    try:  # the scanner alone, without decode's two whitespace matches and calls around it
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        return _DECODER.decode(text)  # leading whitespace, or the error to raise
    return value if end == len(text) else _DECODER.decode(text)


def loads(text: str | bytes) -> dict[str, Any]:
    if text == "{}":
        return {}
    value = decode(text) if text.__class__ is str else json.loads(text)
    assert isinstance(value, dict)  # noqa: S101 - we stored an object; narrows the type
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
        append(EncodedEvent(id_, type_, data, metadata, corr, caus))
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
    check_where(query.where)
    if not isinstance(query.backwards, bool):
        raise InvalidInputError("backwards must be a bool", field="backwards", port=PORT)
    before = query.before_position
    if before is not None and (
        isinstance(before, bool) or not isinstance(before, int) or before < 1
    ):
        raise InvalidInputError(
            "before_position must be an int >= 1 or None", field="before_position", port=PORT
        )
    if not isinstance(query.ids, (frozenset, set)):
        raise InvalidInputError("ids must be a frozenset of str", field="ids", port=PORT)
    for event_id in query.ids:
        if not isinstance(event_id, str) or "\x00" in event_id or not is_text(event_id):
            raise InvalidInputError(
                "ids must be str without U+0000 or lone surrogates", field="ids", port=PORT
            )


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


def validate_subscribe(
    stream: str | None, filter: EventQuery | None, from_position: object
) -> None:
    if stream is not None:
        validate_stream(stream)
    if filter is not None:
        validate_query(filter)
        if filter.backwards or filter.before_position is not None:
            raise InvalidInputError(
                "a subscription delivers forwards without end: its filter cannot be backwards "
                "nor set before_position",
                field="filter",
                port=PORT,
            )
    if isinstance(from_position, bool) or not isinstance(from_position, int):
        raise InvalidInputError("from_position must be an int", field="from_position", port=PORT)
