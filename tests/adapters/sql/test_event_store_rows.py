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


def _rows(times: list[int], stream: str) -> list[tuple[object, ...]]:
    return [
        ("", k + 1, stream, k + 1, f"{stream}-{k}", "E", "{}", "{}", None, None, at)
        for k, at in enumerate(times)
    ]


def test_reading_rows_changes_no_module_state() -> None:
    """The commit-time cache lives in one call: reading rows rebinds no module global (a
    module-level cache would be written from every thread that reads)."""
    from portfolio_core.adapters.sql import _event_store_base as module

    before = dict(vars(module))
    rows_to_events(_rows([1_700_000_000_000_001, 1_700_000_000_000_002], "s"))
    after = vars(module)
    assert {name for name in before if after.get(name) is not before[name]} == set()


def test_threads_reading_rows_at_once_each_get_their_rows_times() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def read(offset: int) -> list[datetime]:
        times = [1_700_000_000_000_000 + offset * 1_000 + k // 3 for k in range(300)]
        events = rows_to_events(_rows(times, f"s{offset}"))
        assert [e.recorded_at for e in events] == [
            datetime.fromtimestamp(at / 1_000_000, UTC) for at in times
        ]
        return [e.recorded_at for e in events]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(read, range(40)))
    assert len({tuple(r) for r in results}) == 40
