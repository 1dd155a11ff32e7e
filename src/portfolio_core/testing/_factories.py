"""Factory wrappers the contract suites share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portfolio_core.testing.loop import accepts_keyword
from portfolio_core.testing.suite import Factory

__all__ = ["with_options"]


def with_options(factory: Factory, **options: object) -> Factory:
    """``factory`` called with ``options`` as well, still offering ``clock=`` to the kit."""
    if accepts_keyword(factory, "clock"):

        def timed(clock: Callable[[], float]) -> Any:
            return factory(clock=clock, **options)

        return timed

    def untimed() -> Any:
        return factory(**options)

    return untimed
