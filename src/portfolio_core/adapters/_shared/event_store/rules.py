"""What every EventStore adapter decides alike: whether the expected version holds
(:func:`check_expected`), whether an append whose ids are stored is an exact retry
(:func:`idempotent_replay`), and whether an event matches a query's filters (:func:`matches`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from portfolio_core.adapters._shared.event_store.validation import PORT, EncodedEvent
from portfolio_core.adapters._shared.event_store.where import check_where, condition_holds
from portfolio_core.ports.errors import ConflictError, WrongExpectedVersionError
from portfolio_core.ports.event_store import EventQuery, ExpectedVersion, RecordedEvent, StreamState


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


def matches(event: RecordedEvent, query: EventQuery) -> bool:
    """Whether ``event`` satisfies every filter of ``query`` (position and limit excluded)."""
    if query.types and event.type not in query.types:
        return False
    if query.ids and event.id not in query.ids:
        return False
    if query.before_position is not None and event.position >= query.before_position:
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
    if query.where:
        return all(condition_holds(event, c) for c in check_where(query.where))
    return True
