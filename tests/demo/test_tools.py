"""The demo's tools: arithmetic is parsed, never executed, and refuses what it cannot compute;
counting events needs an event store."""

from __future__ import annotations

import pytest

from portfolio_core.demo.tools import calculator, count_events, evaluate
from portfolio_core.ports import InvalidInputError, UnavailableError


def test_arithmetic_with_unary_signs_and_powers() -> None:
    assert evaluate("-(2 + +3) * 2 ** 3") == -40.0
    assert calculator("-7 // 2") == "-4"


@pytest.mark.parametrize(
    ("expression", "message"),
    [  # each error names what is wrong
        ("2 +", "not an arithmetic expression"),
        ("1 / 0", "division by zero"),
        ("2 ** 100", "exponent too large"),
        ("__import__('os')", "unsupported element"),
        ("True + 1", "unsupported element"),
    ],
)
def test_what_it_cannot_compute_is_invalid_input(expression: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        evaluate(expression)


async def test_counting_events_without_an_event_store_is_unavailable() -> None:
    with pytest.raises(UnavailableError, match="no event store is available"):
        await count_events("QuestionAsked")
