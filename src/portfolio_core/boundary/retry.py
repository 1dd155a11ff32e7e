"""The boundary's retry rules, for the proxy and for adapters that retry on their own.

* `is_retryable`: whether repeating a call may succeed — the ``retryable`` flag of the
  port error's class, and nothing else (any other exception is not retryable).
* `retry_after_hint`: the ``retry_after`` seconds an error suggests, read safely: a
  hint that is not a real number (missing, a bool, NaN) is no hint; a negative one means
  "now"; infinity stays infinite, so every caller must bound it (the boundary honours a hint
  only up to the retry's ``max_backoff``; the router caps a cooldown at its
  ``max_retry_after``).
* `retry_delay`: the boundary's wait before the next attempt.
"""

from __future__ import annotations

import math
import random

from portfolio_core.boundary.config import RetryConfig
from portfolio_core.ports.errors import PortError

__all__ = ["is_retryable", "retry_after_hint", "retry_delay"]


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying the same call may succeed: a port error whose class says so."""
    return isinstance(exc, PortError) and exc.retryable


def retry_after_hint(exc: BaseException) -> float | None:
    """Seconds ``exc.retry_after`` asks to wait: ``None`` when it gives no usable number
    (absent, not a number, a bool, NaN), ``0.0`` for a negative hint, else the hint
    (possibly ``inf``: bound it)."""
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, bool) or not isinstance(hint, int | float) or math.isnan(hint):
        return None
    return max(0.0, float(hint))


def retry_delay(cfg: RetryConfig, attempt: int, exc: BaseException) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential backoff with jitter; a
    ``retry_after`` hint wins when it is longer and within ``max_backoff`` (a longer or
    unusable hint is ignored)."""
    delay = min(cfg.max_backoff, cfg.backoff * cfg.multiplier ** (attempt - 1))
    delay *= 1.0 - cfg.jitter * random.random()  # noqa: S311  (jitter, not security)
    hint = retry_after_hint(exc)
    if hint is not None and delay < hint <= cfg.max_backoff:
        delay = hint
    return delay
