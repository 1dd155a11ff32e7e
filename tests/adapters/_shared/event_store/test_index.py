"""`rows_to_events` converts stored rows in bulk exactly as `row_to_event` does one by one."""

from __future__ import annotations

import json

import pytest

from portfolio_core.adapters._shared.event_store.index import (
    IndexedRow,
    row_to_event,
    rows_to_events,
)
from portfolio_core.adapters._shared.event_store.validation import EncodedEvent


def _row(k: int, at: int, data: str = "{}", metadata: str = "{}") -> IndexedRow:
    event = EncodedEvent(f"id{k}", "E", data, metadata, "corr" if k % 2 else None, None)
    return IndexedRow(event, f"s{k % 3}", k + 1, k + 1, at)


def test_rows_convert_like_one_at_a_time() -> None:
    rows = [
        _row(0, 1_700_000_000_000_001, json.dumps({"a": [1, 2.5, None]}), '{"m":"é"}'),
        _row(1, 1_700_000_000_000_001),  # same commit time as the previous row
        _row(2, 1_700_000_000_000_002, '{"nested":{"x":true}}'),
        _row(3, 1_700_000_000_000_001, " {}"),  # an earlier time again, and leading space
    ]
    assert rows_to_events(rows) == [row_to_event(r) for r in rows]
    assert [e.recorded_at.microsecond for e in rows_to_events(rows)] == [1, 1, 2, 1]


def test_each_call_returns_fresh_bodies() -> None:
    rows = [_row(0, 1, '{"a":1}'), _row(1, 1)]
    first = rows_to_events(rows)
    first[0].data["a"] = 2  # type: ignore[index]
    first[1].data["b"] = 3  # type: ignore[index]
    assert [e.data for e in rows_to_events(rows)] == [{"a": 1}, {}]


def test_a_body_that_is_not_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        rows_to_events([_row(0, 1, '{"a":')])
    with pytest.raises(ValueError):
        rows_to_events([_row(0, 1, '{"a":1} trailing')])
