"""Helpers for hypothesis state machines that drive an adapter beside a reference model.

Write the machine as a subclass of `AdapterMachine`; it receives a fresh adapter from
the author's factory (with ``clock=`` when the factory accepts it), a private event loop and
a `FakeClock`. Rules call ``self.run(coro)`` for async
adapters and compare with a pure model kept on ``self``::

    class CacheMachine(AdapterMachine[Cache]):
        def __init__(self, factory):
            super().__init__(factory)
            self.model = {}

        @rule(key=keys, value=values)
        def put(self, key, value):
            self.run(self.adapter.put(key, value))
            self.model[key] = value

        @rule(key=keys)
        def get(self, key):
            assert self.run(self.adapter.get(key)) == self.model.get(key)

A suite test runs it with `run_machine` (it honours ``--kit-max-examples`` and
``--kit-steps`` through the ``kit_settings`` fixture). Hypothesis is imported here, so this
module is only loaded by suites that use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.loop import LoopRunner, accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.plugin import KitSettings

__all__ = ["AdapterMachine", "machine_settings", "property_settings", "run_machine"]

A = TypeVar("A")
T = TypeVar("T")
M = TypeVar("M", bound="AdapterMachine[Any]")


class AdapterMachine(RuleBasedStateMachine, Generic[A]):
    """A state machine owning one fresh adapter, a private loop and a fake clock.

    Attributes:
        adapter: made by the factory inside ``runner``'s loop, started, closed in teardown.
        clock: the `FakeClock` passed to the factory.
        controls_time: whether the factory accepted ``clock=`` (gate time rules on it with
            ``@precondition(lambda self: self.controls_time)``).
        runner: the machine's `LoopRunner`.
    """

    def __init__(self, factory: Callable[..., Any], *, timeout: float = 60.0) -> None:
        super().__init__()
        self.runner = LoopRunner(timeout=timeout)
        self.clock = FakeClock()
        self.controls_time = accepts_keyword(factory, "clock")
        try:
            self.adapter: A = self.runner.run(open_adapter(factory, clock=self.clock))
        except BaseException:
            self.runner.close()
            raise

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the machine's loop and return its result."""
        return self.runner.run(awaitable)

    def teardown(self) -> None:
        try:
            self.runner.run(close_adapter(self.adapter))
        finally:
            self.runner.close()


def machine_settings(kit: KitSettings | None = None) -> settings:
    """Hypothesis settings for a state machine: the kit's budget, no deadline, no database
    writes outside the hypothesis default."""
    kit = kit or KitSettings()
    return settings(
        max_examples=kit.max_examples,
        stateful_step_count=kit.step_count,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def property_settings(kit: KitSettings | None = None) -> settings:
    """Hypothesis settings for a property test using the suite's function-scoped fixtures."""
    kit = kit or KitSettings()
    return settings(
        max_examples=kit.max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def run_machine(
    machine: type[M],
    factory: Callable[..., Any],
    kit: KitSettings | None = None,
    **kwargs: Any,
) -> None:
    """Run ``machine`` against fresh adapters from ``factory`` (one per example).

    Extra ``kwargs`` go to the machine's constructor after the factory.
    """
    kit = kit or KitSettings()
    timeout = kit.timeout

    def build() -> M:
        return machine(factory, timeout=timeout, **kwargs)

    # hypothesis documents any zero-argument callable returning a machine; its stub says type
    run_state_machine_as_test(build, settings=machine_settings(kit))  # type: ignore[arg-type]
