"""The check the fault clauses share: with the backend unreachable, every call raises the
port's [UnavailableError][portfolio_core.ports.errors.UnavailableError]."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from portfolio_core.ports.errors import UnavailableError

__all__ = ["expect_all_unavailable"]


async def expect_all_unavailable(calls: Sequence[tuple[str, Callable[[], Any]]]) -> None:
    """Run each ``(name, call)``; each must raise UnavailableError (awaiting the result when
    it is awaitable). Raises AssertionError naming the first call that returned, or that
    raised anything else (a driver's ``ConnectionError``, a bare ``OSError``)."""
    for name, call in calls:
        try:
            result = call()
            if inspect.isawaitable(result):
                await result
        except UnavailableError:
            continue
        except Exception as exc:
            raise AssertionError(
                f"{name} with the backend unreachable raised {exc!r}, not UnavailableError"
            ) from exc
        raise AssertionError(f"{name} succeeded with the backend unreachable")
