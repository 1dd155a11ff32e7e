"""The public validation helpers refuse exactly what the ports' contracts refuse, naming the
field, and accept everything else unchanged."""

from __future__ import annotations

import math
from typing import Any

import pytest

from portfolio_core.ports import MAX_KEY_LENGTH, MAX_VALUE_DEPTH, InvalidInputError
from portfolio_core.ports.validation import check_cache_key, check_json_value, check_ttl


@pytest.mark.parametrize("key", ["k", "user:1/a", "k" * MAX_KEY_LENGTH, "ключ", "a b\tc"])
def test_a_valid_cache_key_is_returned(key: str) -> None:
    assert check_cache_key(key) is key


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "non-empty strings"),
        ("k" * (MAX_KEY_LENGTH + 1), f"at most {MAX_KEY_LENGTH}"),
        (7, "got int"),
        (None, "got NoneType"),
        (b"k", "got bytes"),
        ("nul\x00key", "NUL character"),
        ("lone\udc80", "lone surrogate"),
    ],
)
def test_a_bad_cache_key_is_refused_naming_the_field(key: Any, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words) as info:
        check_cache_key(key)
    assert info.value.field == "key"


@pytest.mark.parametrize(("ttl", "seconds"), [(None, None), (1, 1.0), (0.25, 0.25), (10**6, 1e6)])
def test_a_valid_ttl_is_returned_as_float_seconds(ttl: Any, seconds: float | None) -> None:
    got = check_ttl(ttl)
    assert got == seconds
    assert got is None or type(got) is float


@pytest.mark.parametrize("ttl", [0, -1, -0.5, math.nan, math.inf, True, False, "10", [1]])
def test_a_bad_ttl_is_refused_naming_the_field(ttl: Any) -> None:
    with pytest.raises(InvalidInputError, match="ttl must be") as info:
        check_ttl(ttl)
    assert info.value.field == "ttl"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [True, 0, -3, 1.5, "text", "nul\x00inside", [], {}, [1, "a", None], {"a": {"b": [None]}}],
)
def test_json_values_are_accepted(value: Any) -> None:
    check_json_value(value)


def test_the_depth_limit_is_inclusive() -> None:
    check_json_value(nested(MAX_VALUE_DEPTH))
    with pytest.raises(InvalidInputError, match=f"more than {MAX_VALUE_DEPTH}"):
        check_json_value(nested(MAX_VALUE_DEPTH + 1))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "None cannot be stored"),
        ((1, 2), "got tuple"),
        ({1, 2}, "got set"),
        (b"x", "got bytes"),
        (math.nan, "finite float"),
        ([math.inf], "finite float"),
        ({1: "a"}, "non-string dict key"),
        ({"k": "lone\udc80"}, "lone surrogate"),
        ({"lone\udc80": 1}, "lone surrogate"),
        ([object()], "got object"),
    ],
)
def test_non_json_values_are_refused_naming_the_field(value: Any, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words) as info:
        check_json_value(value, field="data")
    assert info.value.field == "data"


def test_none_at_the_top_is_accepted_when_allowed() -> None:
    check_json_value(None, allow_none=True)


def test_text_false_lets_lone_surrogates_through() -> None:
    check_json_value({"k": "lone\udc80"}, text=False)
