"""Rows read back as RecordedEvents: JSON text decodes exactly as ``json`` decodes it, and
each event gets its own row's commit time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from portfolio_core.adapters.sql._event_store_base import decode, rows_to_events


@pytest.mark.parametrize(
    "text",
    [
        '{"amount":12345,"note":"xx"}',
        '{"é":"ü€🙂","n":[1,2.5,null,true,false,"a\\u0000b"],"o":{}}',
        ' {"leading": 1}',
        '{"trailing": 1}  ',
        '\n{\n  "indented": [1, 2]\n}\n',
        "[]",
        '"text"',
    ],
)
def test_decode_matches_json(text: str) -> None:
    assert decode(text) == json.JSONDecoder().decode(text)


@pytest.mark.parametrize("text", ['{"a": 1} x', '{"a": 1}{}', '{"a":', "", "  ", "\ufeff{}", "nul"])
def test_decode_raises_what_json_raises(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.JSONDecoder().decode(text)
    with pytest.raises(json.JSONDecodeError) as caught:
        decode(text)
    assert (caught.value.msg, caught.value.pos) == (expected.value.msg, expected.value.pos)


def test_each_event_gets_its_rows_time() -> None:
    times = [1_700_000_000_000_001, 1_700_000_000_000_001, 1_700_000_000_500_000, 0]
    rows = [
        ("", k + 1, "s", k + 1, f"id-{k}", "E", json.dumps({"k": k}), "{}", None, None, at)
        for k, at in enumerate(times)
    ]
    events = rows_to_events(rows)
    assert [e.recorded_at for e in events] == [
        datetime.fromtimestamp(at / 1_000_000, UTC) for at in times
    ]
    assert [e.data for e in events] == [{"k": k} for k in range(len(times))]
    assert events[0].recorded_at.tzinfo is UTC
