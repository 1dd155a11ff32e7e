"""What the Cache clauses share: constants, sample inputs and small helpers."""

from __future__ import annotations

import inspect
from typing import Any

from hypothesis import strategies as st

from portfolio_core.ports.cache import MAX_KEY_LENGTH
from portfolio_core.ports.values import MAX_VALUE_DEPTH

VALUES: list[Any] = [
    0,
    -7,
    2**53,
    1.5,
    True,
    False,
    "",
    "text with ünïcode ✓",
    [],
    {},
    [1, "a", None, [2.5, {"x": False}]],
    {"nested": {"list": [1, 2, 3], "none": None}, "s": "v"},
    "nul \x00 inside",
    {"k\x00": ["v\x00", {"\x00": "\x00"}]},
]


def nested_lists(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


BAD_VALUES: list[Any] = [
    None,
    (1, 2),
    {1, 2},
    b"bytes",
    {1: "int key"},
    float("nan"),
    object(),
    {"k": [1, (2,)]},
    "lone \udc80 surrogate",
    {"k": ["\ud800"]},
    {"\udfff": 1},
    nested_lists(MAX_VALUE_DEPTH + 1),
    nested_lists(5000),
]
BAD_KEYS: list[Any] = [
    "",
    "k" * (MAX_KEY_LENGTH + 1),
    7,
    None,
    b"k",
    "nul\x00key",
    "lone\udc80surrogate",
]
BAD_TTLS: list[Any] = [0, -1, -0.5, float("nan"), float("inf"), "10", True, False, [5]]

#: how long the real-time expiry clause waits for a 0.3 s ttl to pass (server TTLs may be
#: coarse, and a loaded machine slow)
REAL_TIME_WAIT = 5.0

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
).filter(lambda v: v is not None)


async def resolve(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


keys_st = st.sampled_from(["a", "b", "c", "d:e", "d/e"])
#: the max_entries the state machine passes to factories that take it: far above its keys
MACHINE_ROOM = 64
values_st = st.integers(-5, 5) | st.text(max_size=3) | st.lists(st.integers(0, 3), max_size=2)
ttls_st = st.floats(0.5, 10)
