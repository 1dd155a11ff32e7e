"""The portal's JSON depth limit agrees with a naive count of the parsed document."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_core.portal._http import json_too_deep
from tests.wire.test_codec import json_values


def naive_depth(text: str) -> int:
    def depth(value: Any) -> int:
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        return 0

    return depth(json.loads(text))


@settings(max_examples=200, deadline=None)
@given(json_values, st.integers(1, 8))
def test_depth_check_agrees_with_a_naive_count(value: Any, limit: int) -> None:
    text = json.dumps(value)
    assert json_too_deep(text.encode(), limit) == (naive_depth(text) > limit)
