"""The default cache codec: the bytes it writes stay the same, since persistent and shared
caches read what earlier versions wrote."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from portfolio_core.adapters._shared.codec import JsonCodec
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.testing.contracts.cache import BAD_VALUES, VALUES, json_values


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_encodes_compact_utf8_json(value: Any) -> None:
    codec = JsonCodec()
    assert codec.encode(value) == compact_json(value)
    assert codec.decode(codec.encode(value)) == value


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_any_json_value_encodes_as_compact_utf8_json(value: Any) -> None:
    assert JsonCodec().encode(value) == compact_json(value)


@pytest.mark.parametrize("value", [*BAD_VALUES, float("inf"), [float("-inf")], {"a": (1,)}])
def test_refuses_what_json_would_convert_or_cannot_represent(value: Any) -> None:
    with pytest.raises(InvalidInputError):
        JsonCodec().encode(value)
