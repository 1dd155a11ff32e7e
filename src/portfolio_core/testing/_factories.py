"""Factory wrappers the contract suites share."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from portfolio_core.ports.capabilities import supports
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.loop import LoopRunner, accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.suite import Factory

__all__ = ["adapter_with_option", "opened_with", "tenant_scoped_adapter", "with_options"]


def with_options(factory: Factory, **options: object) -> Factory:
    """``factory`` called with ``options`` as well, still offering ``clock=`` to the kit."""
    if accepts_keyword(factory, "clock"):

        def timed(clock: Callable[[], float]) -> Any:
            return factory(clock=clock, **options)

        return timed

    def untimed() -> Any:
        return factory(**options)

    return untimed


def adapter_with_option(
    make_adapter: Factory,
    kit_runner: LoopRunner,
    kit_clock: FakeClock,
    *,
    option: str,
    value: object,
    capability: str,
    unchecked: str,
) -> Iterator[Any]:
    """The body of a fixture yielding a fresh adapter made with ``option=value``.

    Skips the test (saying ``unchecked``) when the factory does not accept ``option`` by
    name, and when the adapter made does not declare ``capability``. The adapter is opened on
    the kit's loop with the kit's clock and closed after the test, whether it passed, failed
    or was skipped. Use it as ``yield from adapter_with_option(...)``.
    """
    if not accepts_keyword(make_adapter, option):
        pytest.skip(f"the factory does not accept {option}=, so {unchecked}")
    made = kit_runner.run(
        open_adapter(with_options(make_adapter, **{option: value}), clock=kit_clock)
    )
    try:
        if not supports(made, capability):
            pytest.skip(f"{type(made).__name__} does not declare '{capability}'")
        yield made
    finally:
        kit_runner.run(close_adapter(made))


def tenant_scoped_adapter(capability: str) -> Any:
    """A suite's ``scoped_adapter`` fixture: a fresh adapter made with ``tenant_scoped=True``.

    It skips unless the factory accepts ``tenant_scoped=`` and the adapter declares
    ``capability`` (the port's ``TENANT_SCOPED``); see `adapter_with_option`. Assign it in
    the suite's class body: ``scoped_adapter = tenant_scoped_adapter(Capability.TENANT_SCOPED)``.
    """

    @pytest.fixture(name="scoped_adapter")
    def scoped_adapter(
        self: object, make_adapter: Factory, kit_runner: LoopRunner, kit_clock: FakeClock
    ) -> Iterator[Any]:
        """A fresh adapter made with ``tenant_scoped=True`` (skips when it cannot be)."""
        yield from adapter_with_option(
            make_adapter,
            kit_runner,
            kit_clock,
            option="tenant_scoped",
            value=True,
            capability=capability,
            unchecked="scoping is not checked",
        )

    return scoped_adapter


@contextlib.asynccontextmanager
async def opened_with(
    make_adapter: Factory, kit_clock: FakeClock, **options: object
) -> AsyncIterator[Any]:
    """A fresh adapter made by ``make_adapter`` with ``options``, for an async clause's body.

    Skips the test (naming the option) when the factory does not accept one of ``options`` by
    name. The adapter is opened in the running loop with the kit's clock and closed on leaving
    the block, however the block ends (a failed assertion or a skip included).
    """
    for option in options:
        if not accepts_keyword(make_adapter, option):
            pytest.skip(f"the factory does not accept {option}=")
    adapter = await open_adapter(with_options(make_adapter, **options), clock=kit_clock)
    try:
        yield adapter
    finally:
        await close_adapter(adapter)
