"""The fixture body the suites share for an adapter made with one extra option: it skips,
naming why, when the factory cannot take the option or the adapter does not declare the
capability, and closes every adapter it opened."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portfolio_core.testing._factories import adapter_with_option, opened_with
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.loop import LoopRunner


class _Adapter:
    def __init__(self, declared: frozenset[str], scoped: bool, clock: Callable[[], float]):
        self.capabilities = declared
        self.scoped = scoped
        self.clock = clock
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


def _opened(make: Callable[..., Any], runner: LoopRunner, clock: FakeClock) -> Iterator[Any]:
    return adapter_with_option(
        make,
        runner,
        clock,
        option="scoped",
        value=True,
        capability="kit.scoped",
        unchecked="scoping is not checked",
    )


@pytest.fixture
def runner() -> Iterator[LoopRunner]:
    with LoopRunner() as loop_runner:
        yield loop_runner


def test_an_adapter_declaring_the_capability_is_made_with_the_option_and_closed_after(
    runner: LoopRunner,
) -> None:
    made: list[_Adapter] = []
    clock = FakeClock()

    def make(*, scoped: bool = False, clock: Callable[[], float]) -> _Adapter:
        made.append(_Adapter(frozenset({"kit.scoped"}), scoped, clock))
        return made[-1]

    body = _opened(make, runner, clock)
    adapter = next(body)
    assert adapter is made[0]
    assert adapter.scoped is True, "the option was not passed"
    assert adapter.clock is clock, "the kit's clock was not offered"
    assert not adapter.closed
    with pytest.raises(StopIteration):
        next(body)
    assert adapter.closed, "the adapter was not closed after the test"


def test_a_factory_without_the_option_skips_naming_it(runner: LoopRunner) -> None:
    def make() -> _Adapter:
        raise AssertionError("no adapter should be made")

    with pytest.raises(pytest.skip.Exception, match="does not accept scoped=, so scoping is not"):
        next(_opened(make, runner, FakeClock()))


def test_an_adapter_not_declaring_the_capability_skips_naming_it_and_is_closed(
    runner: LoopRunner,
) -> None:
    made: list[_Adapter] = []

    def make(*, scoped: bool = False) -> _Adapter:
        made.append(_Adapter(frozenset(), scoped, lambda: 0.0))
        return made[-1]

    with pytest.raises(
        pytest.skip.Exception, match=re.escape("_Adapter does not declare 'kit.scoped'")
    ):
        next(_opened(make, runner, FakeClock()))
    assert made[0].closed, "a skipped adapter was left open"


def test_opened_with_passes_the_options_and_closes_however_the_block_ends(
    runner: LoopRunner,
) -> None:
    made: list[_Adapter] = []
    clock = FakeClock()

    def make(*, scoped: bool = False, clock: Callable[[], float]) -> _Adapter:
        made.append(_Adapter(frozenset(), scoped, clock))
        return made[-1]

    async def failing_block() -> None:
        async with opened_with(make, clock, scoped=True) as adapter:
            assert adapter.scoped is True, "the option was not passed"
            assert adapter.clock is clock, "the kit's clock was not offered"
            assert not adapter.closed
            raise RuntimeError("the clause failed")

    with pytest.raises(RuntimeError, match="the clause failed"):
        runner.run(failing_block())
    assert made[0].closed, "the adapter was left open after the block failed"


def test_opened_with_skips_naming_an_option_the_factory_does_not_accept(
    runner: LoopRunner,
) -> None:
    def make(*, scoped: bool = False) -> _Adapter:
        raise AssertionError("no adapter should be made")

    async def block() -> None:
        async with opened_with(make, FakeClock(), scoped=True, max_entries=3):
            raise AssertionError("the block must not run")

    with pytest.raises(pytest.skip.Exception, match="does not accept max_entries="):
        runner.run(block())
