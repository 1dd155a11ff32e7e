"""Validation and JSON encoding of appended batches, shared by every EventStore adapter."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import pytest

from portfolio_core.adapters._shared.event_store.validation import encode_batch
from portfolio_core.ports import MAX_VALUE_DEPTH, InvalidInputError, NewEvent

LIMIT = 1_048_576


def compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"amount": 12345, "note": "x" * 48},
        {"é": "ü€🙂", "nested": {"list": [1, 2.5, None, True, False, 'a\nb\t"q"']}},
        {"big": 10**30, "neg": -0.0, "small": 1e-300, "1": {"2": []}},
        {"literal": "\\u0000 is text, not NUL"},
    ],
)
def test_json_is_compact_and_keeps_non_ascii(data: dict[Any, Any]) -> None:
    (encoded,) = encode_batch("s", [NewEvent("E", data, data, id="i")], LIMIT)
    assert encoded.data == compact(data)
    assert encoded.metadata == compact(data)
    assert json.loads(encoded.data) == json.loads(compact(data))


def test_a_batch_may_be_any_sequence() -> None:
    batch = (NewEvent("E", {"a": 1}, id="i"), NewEvent("E", id="j"))
    encoded = encode_batch("s", batch, LIMIT)
    assert [(e.id, e.data, e.metadata) for e in encoded] == [
        ("i", '{"a":1}', "{}"),
        ("j", "{}", "{}"),
    ]


@pytest.mark.parametrize("what", ["data", "metadata"])
def test_a_circular_value_is_invalid_input(what: str) -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    event = NewEvent("E", loop, id="i") if what == "data" else NewEvent("E", metadata=loop)
    with pytest.raises(InvalidInputError, match="nested more than 64") as caught:
        encode_batch("s", [event], LIMIT)
    assert caught.value.field == what


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"x": object()}, "must be JSON-compatible"),
        ({"x": float("inf")}, "finite float"),
        ({(1, 2): 1}, "non-string"),
        ([1, 2], "must be a JSON object"),
        # what JSON would silently convert is refused, as the cache codec refuses it
        ({1: "int key"}, "non-string"),
        ({"n": {2.5: "float key"}}, "non-string"),
        ({"t": (1, 2)}, "got tuple"),
        ({"deep": [[[{"x": (1,)}]]]}, "got tuple"),
        (OrderedDict(a=(1,)), "got tuple"),
        (OrderedDict([(1, "a")]), "non-string"),
    ],
)
def test_data_that_is_not_a_json_object(bad: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        encode_batch("s", [NewEvent("E", {"ok": 1}), NewEvent("E", bad)], LIMIT)
    assert caught.value.field == "data"


def test_nul_is_reported_only_when_the_batch_has_no_other_problem() -> None:
    nul = NewEvent("T\x00", id="a")
    with pytest.raises(InvalidInputError, match="twice") as caught:
        encode_batch("s", [nul, NewEvent("E", id="b"), NewEvent("E", id="b")], LIMIT)
    assert caught.value.field == "id"
    with pytest.raises(InvalidInputError, match="max_event_bytes") as caught:
        encode_batch("s", [nul, NewEvent("E", {"x": "y" * 200}, id="b")], 100)
    assert caught.value.field == "events"


def test_the_first_nul_of_the_batch_is_reported() -> None:
    batch = [
        NewEvent("E", {"text": "\\u0000"}, id="a"),  # an escape's text, not NUL: accepted
        NewEvent("E", metadata={"m": ["ok", "b\x00"]}, id="b"),
        NewEvent("E\x00", id="c"),
    ]
    with pytest.raises(InvalidInputError) as caught:
        encode_batch("s", batch, LIMIT)
    assert caught.value.field == "metadata"
    assert "events[1].metadata['m'][1] contains the NUL character" in str(caught.value)
    (encoded,) = encode_batch("s", batch[:1], LIMIT)
    assert encoded.data == '{"text":"\\\\u0000"}'


@pytest.mark.parametrize("depth", [MAX_VALUE_DEPTH, MAX_VALUE_DEPTH + 1, 5000])
def test_nesting_is_limited_to_the_documented_depth(depth: int) -> None:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    data = {"v": value}  # the data object itself is the first level
    if depth <= MAX_VALUE_DEPTH:
        encode_batch("s", [NewEvent("E", data)], LIMIT)
        return
    with pytest.raises(InvalidInputError, match=f"nested more than {MAX_VALUE_DEPTH}"):
        encode_batch("s", [NewEvent("E", data)], LIMIT)
