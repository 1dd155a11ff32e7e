"""What the EventStore clauses share: constants, sample inputs and small helpers."""

from __future__ import annotations

from typing import Any

from portfolio_core.ports.event_store import (
    NewEvent,
    RecordedEvent,
)

WAIT = 10.0
#: the most times a subscription with on_error=retry may run the handler on one event
MAX_HANDLER_ATTEMPTS = 10


STRING_CASES = [
    ("data_value", "data"),
    ("data_later_value", "data"),
    ("data_key", "data"),
    ("data_nested", "data"),
    ("metadata_value", "metadata"),
    ("metadata_key", "metadata"),
    ("type", "type"),
    ("id", "id"),
    ("correlation_id", "correlation_id"),
    ("causation_id", "causation_id"),
    ("stream", "stream"),
]
"""Where a refused string can hide in an append, and the field the error must name."""


def ev(type_: str = "E", i: int = 0, **kw: Any) -> NewEvent:
    return NewEvent(type_, {"i": i, **kw})


def event_ids(events: list[RecordedEvent]) -> list[str]:
    return [e.id for e in events]
