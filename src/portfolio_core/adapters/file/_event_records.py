"""The event log's record: one appended batch as a JSON payload, framed and checksummed.

The payload keeps its keys in a fixed order, so every record starts with `PAYLOAD_START`, a
cheap filter when looking for the next intact record after a damaged one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from portfolio_core.adapters._shared.event_store.index import IndexedRow
from portfolio_core.adapters._shared.event_store.validation import EncodedEvent, decode
from portfolio_core.adapters.file._framing import frame

__all__ = ["PAYLOAD_START", "decode_record", "encode_record"]

# built once (json.dumps with these options builds a new encoder on every call)
_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_record(tenant: str, rows: Sequence[IndexedRow]) -> bytes:
    """One framed, checksummed record of a batch ``rows`` appended for ``tenant``."""
    first = rows[0]
    payload = _RECORD_ENCODER.encode(
        {
            "t": tenant,
            "s": first.stream,
            "v": first.version,
            "p": first.position,
            "at": first.recorded_at,
            "e": [
                [
                    r.event.id,
                    r.event.type,
                    r.event.data,
                    r.event.metadata,
                    r.event.correlation_id,
                    r.event.causation_id,
                ]
                for r in rows
            ],
        }
    ).encode()
    return frame(payload)


def decode_record(payload: bytes) -> tuple[str, list[IndexedRow]]:
    """``(tenant, rows)`` of a record's payload.

    Raises:
        ValueError, KeyError, TypeError: the payload is not a record of this format.
    """
    rec: dict[str, Any] = decode(payload.decode())
    stream, version, position, at = rec["s"], rec["v"], rec["p"], rec["at"]
    rows = [
        IndexedRow(EncodedEvent(*e), stream, version + k, position + k, at)
        for k, e in enumerate(rec["e"])
    ]
    if not rows:
        raise ValueError("a record holds no event")
    return rec["t"], rows


# Every payload starts with this (json.dumps keeps the dict's order): a cheap filter when
# looking for the next intact record after a damaged one.
PAYLOAD_START = b'{"t":'
