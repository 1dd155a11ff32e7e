"""What every SnapshotStore adapter shares: validation and the stored form of a snapshot.

A snapshot is stored as one JSON text ``{"v": version, "s": schema_version, "t": taken_at
(microseconds since the epoch), "state": {...}}`` next to its stream and version (which the
SQL and Redis adapters also keep in their own columns/fields, to compare versions in the
database).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from portfolio_core.adapters._shared.codec import check_json_value, is_text
from portfolio_core.ports.errors import CorruptDataError, InvalidInputError
from portfolio_core.ports.snapshot_store import MAX_STREAM_NAME, Snapshot

__all__ = [
    "DEFAULT_MAX_SNAPSHOT_BYTES",
    "PORT",
    "EncodedSnapshot",
    "decode_snapshot",
    "encode_snapshot",
    "validate_stream",
]

PORT = "SnapshotStore"
DEFAULT_MAX_SNAPSHOT_BYTES = 16 * 1_048_576
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EncodedSnapshot(NamedTuple):
    stream: str
    version: int
    body: str


def validate_stream(stream: object) -> str:
    """``stream`` if it is a name a snapshot can be stored under, else InvalidInputError."""
    if not isinstance(stream, str) or not stream:
        raise InvalidInputError("stream must be a non-empty str", field="stream", port=PORT)
    if len(stream) > MAX_STREAM_NAME:
        raise InvalidInputError(
            f"stream name is longer than {MAX_STREAM_NAME} characters",
            field="stream",
            port=PORT,
        )
    if "\x00" in stream:
        raise InvalidInputError("stream name holds U+0000", field="stream", port=PORT)
    if not is_text(stream):
        raise InvalidInputError(
            "stream name holds a lone surrogate, which is not Unicode text",
            field="stream",
            port=PORT,
        )
    return stream


def _positive(value: object, name: str) -> int:
    if type(value) is not int or value < 1:
        raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}", field=name, port=PORT)
    return value


def encode_snapshot(snapshot: object, max_bytes: int) -> EncodedSnapshot:
    """Validate ``snapshot`` and encode it; InvalidInputError (naming the field) if bad."""
    if not isinstance(snapshot, Snapshot):
        raise InvalidInputError(
            f"expected a Snapshot, got {type(snapshot).__name__}", field="snapshot", port=PORT
        )
    stream = validate_stream(snapshot.stream)
    version = _positive(snapshot.version, "version")
    schema_version = _positive(snapshot.schema_version, "schema_version")
    state = snapshot.state
    if not isinstance(state, Mapping):
        raise InvalidInputError(
            f"state must be a JSON object, got {type(state).__name__}", field="state", port=PORT
        )
    check_json_value(dict(state), field="state")
    taken = snapshot.taken_at
    if not isinstance(taken, datetime) or taken.tzinfo is None:
        raise InvalidInputError(
            "taken_at must be a timezone-aware datetime", field="taken_at", port=PORT
        )
    micros = (taken - _EPOCH) // _MICRO
    body = _ENCODER.encode({"v": version, "s": schema_version, "t": micros, "state": state})
    if len(body.encode()) > max_bytes:
        raise InvalidInputError(
            f"the snapshot of {stream!r} is larger than max_snapshot_bytes ({max_bytes})",
            field="state",
            port=PORT,
        )
    return EncodedSnapshot(stream, version, body)


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def decode_snapshot(stream: str, body: str | bytes, location: str) -> Snapshot:
    """The snapshot stored as ``body``; CorruptDataError naming ``location`` if unreadable."""
    try:
        raw: Any = json.loads(body)
        version, schema_version, micros, state = raw["v"], raw["s"], raw["t"], raw["state"]
        if not (
            type(version) is int
            and type(schema_version) is int
            and type(micros) is int
            and isinstance(state, dict)
        ):
            raise TypeError("wrong field types")
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise CorruptDataError(
            f"the stored snapshot of {stream!r} cannot be decoded ({type(exc).__name__})",
            location=location,
            port=PORT,
        ) from None
    return Snapshot(stream, version, state, schema_version, _EPOCH + micros * _MICRO)
