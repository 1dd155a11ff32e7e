"""The boundary's retry rules, shared with adapters that retry on their own (the router)."""

from __future__ import annotations

import math

import pytest

from portfolio_core.boundary.config import RetryConfig
from portfolio_core.boundary.retry import is_retryable, retry_after_hint, retry_delay
from portfolio_core.ports import (
    InvalidInputError,
    PortTimeoutError,
    RateLimitedError,
    UnavailableError,
)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (UnavailableError("down"), True),
        (RateLimitedError("slow down"), True),
        (PortTimeoutError("late"), True),
        (InvalidInputError("bad"), False),
        (RuntimeError("bug"), False),
    ],
)
def test_only_port_errors_flagged_retryable_are_retried(
    exc: BaseException, retryable: bool
) -> None:
    assert is_retryable(exc) is retryable


@pytest.mark.parametrize(
    ("hint", "seconds"),
    [
        (None, None),
        ("5", None),
        (True, None),
        (math.nan, None),
        (-3, 0.0),
        (2.5, 2.5),
        (math.inf, math.inf),
    ],
)
def test_retry_after_hint_reads_only_real_numbers(hint: object, seconds: float | None) -> None:
    exc = RateLimitedError("slow down")
    exc.retry_after = hint  # type: ignore[assignment]
    assert retry_after_hint(exc) == seconds


@pytest.mark.parametrize("hint", [math.inf, math.nan, -1.0, 1e12, 5.5])
def test_retry_delay_ignores_hints_beyond_max_backoff(hint: float) -> None:
    cfg = RetryConfig(attempts=3, backoff=0.1, multiplier=2, max_backoff=5, jitter=0)
    assert retry_delay(cfg, 1, RateLimitedError("x", retry_after=hint)) == pytest.approx(0.1)
    assert retry_delay(cfg, 1, RateLimitedError("x", retry_after=4.0)) == pytest.approx(4.0)
