"""``ContractSuite``: the base every port's contract test class derives from.

A port owner writes ``class CacheContract(ContractSuite[Cache])`` with ``port_key = "cache"``
and one ``@clause`` test per promise. An adapter author writes::

    class TestMyCache(CacheContract):
        @pytest.fixture
        def make_adapter(self):
            yield MyCache            # a factory: called with no arguments -> fresh, empty adapter
            # teardown here: drop tables, delete keys, remove files

and gets every clause, the hygiene checks below and the capability gating for free.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

import pytest

from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.introspection import members_of
from portfolio_core.testing.clauses import clause, kit_async
from portfolio_core.testing.clock import FakeClock, FakeWallClock
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.loop import LoopRunner, accepts_keyword, close_adapter, open_adapter

__all__ = ["ContractSuite", "Factory"]

A = TypeVar("A")

#: what ``make_adapter`` returns: called with no arguments (or ``clock=``), gives an adapter
Factory = Callable[..., Any]


class ContractSuite(Generic[A]):
    """Base of the per-port contract suites (generic in the adapter type).

    Class attributes a port suite sets:
        port_key: the catalogue key of the port (``"cache"``).
        capability_names: every capability name the port defines (to catch typos).
        kit_contract: True on classes whose ``@clause`` tests are the reference (set
            automatically for classes defined in ``portfolio_core.testing``; a third party
            publishing its own suite sets it explicitly). The tamper guard protects the
            clause tests of such classes against deletion and silent overriding.

    Fixtures every suite offers to its tests:
        adapter: a fresh adapter made by ``make_adapter`` inside the kit's loop and started;
            closed after the test. Tests marked with ``requires``/``requires_absent`` are
            skipped here, with the reason, when the declaration does not fit.
        new_adapter: an async function returning one more fresh adapter (closed afterwards).
        clock: the `FakeClock` passed as ``clock=`` to the factory; skips the test when
            the factory does not accept ``clock``.
        wall_clock: the `FakeWallClock` passed as ``wall_clock=`` (a ``time.time``
            that starts now and may be set back); skips when the factory does not accept it.
        faults: the `FaultInjector` passed as
            ``faults=`` to the factory; skips the test when the factory does not accept it.
        kit_runner: the test's `LoopRunner`.

    Hooks a stateful port suite overrides to get the hygiene checks of fresh and
    independent instances: `put_probe` and `has_probe`.
    """

    port_key: ClassVar[str] = ""
    capability_names: ClassVar[frozenset[str]] = frozenset()
    kit_contract: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kit_contract" not in cls.__dict__ and cls.__module__.startswith(
            "portfolio_core.testing"
        ):
            cls.kit_contract = True
        for name, value in list(cls.__dict__.items()):
            if name.startswith("test") and inspect.iscoroutinefunction(value):
                setattr(cls, name, kit_async(value))

    # -- the one fixture an author provides ------------------------------------------------

    @pytest.fixture
    def make_adapter(self) -> Factory:
        """Override: return (or yield, then clean up) a factory of fresh, empty adapters."""
        pytest.fail(
            f"{type(self).__name__} must define the fixture make_adapter, returning a factory "
            "that gives a fresh, empty adapter (see docs/testing/index.md)",
            pytrace=False,
        )

    # -- fixtures the kit provides -------------------------------------------------------

    @pytest.fixture
    def adapter(
        self,
        request: pytest.FixtureRequest,
        make_adapter: Factory,
        kit_runner: LoopRunner,
        kit_clock: FakeClock,
        kit_faults: FaultInjector,
        kit_wall_clock: FakeWallClock,
    ) -> Iterator[A]:
        """A fresh, started adapter; skipped when its capabilities do not fit the test."""
        made: A = kit_runner.run(
            open_adapter(
                make_adapter, clock=kit_clock, faults=kit_faults, wall_clock=kit_wall_clock
            )
        )
        try:
            declared = capabilities_of(made)
            _record_adapter(request, made, declared)
            reason = _capability_skip_reason(request.node, made, declared)
            if reason is not None:
                pytest.skip(reason)
            yield made
        finally:
            kit_runner.run(close_adapter(made))

    @pytest.fixture
    def new_adapter(
        self, make_adapter: Factory, kit_runner: LoopRunner, kit_clock: FakeClock
    ) -> Iterator[Callable[[], Awaitable[A]]]:
        """An async function making one more fresh adapter (closed after the test)."""
        made: list[A] = []

        async def another() -> A:
            adapter: A = await open_adapter(make_adapter, clock=kit_clock)
            made.append(adapter)
            return adapter

        yield another
        for adapter in reversed(made):
            kit_runner.run(close_adapter(adapter))

    @pytest.fixture
    def clock(self, make_adapter: Factory, kit_clock: FakeClock) -> FakeClock:
        """The FakeClock the adapter reads; skips when the factory does not accept ``clock``."""
        if not accepts_keyword(make_adapter, "clock"):
            pytest.skip(
                "the factory does not accept a clock= parameter, so the kit cannot control "
                "time for this clause"
            )
        return kit_clock

    @pytest.fixture
    def wall_clock(self, make_adapter: Factory, kit_wall_clock: FakeWallClock) -> FakeWallClock:
        """The FakeWallClock passed as ``wall_clock=`` to the factory (timestamps such as
        ``recorded_at``); skips the test when the factory does not accept ``wall_clock``."""
        if not accepts_keyword(make_adapter, "wall_clock"):
            pytest.skip(
                "the factory does not accept a wall_clock= parameter, so the kit cannot "
                "control the time stamps this clause checks"
            )
        return kit_wall_clock

    @pytest.fixture
    def faults(
        self, make_adapter: Factory, kit_faults: FaultInjector, kit_runner: LoopRunner
    ) -> Iterator[FaultInjector]:
        """The FaultInjector passed as ``faults=`` to the factory; skips the test when the
        factory does not accept ``faults``. Cleared after the test (before teardown)."""
        if not accepts_keyword(make_adapter, "faults"):
            pytest.skip(
                "the factory does not accept a faults= parameter, so the kit cannot inject "
                "backend faults to check the error mapping"
            )
        yield kit_faults
        kit_faults.clear()

    @pytest.fixture(autouse=True)
    def _kit_capability_gate(self, request: pytest.FixtureRequest) -> None:
        """Apply capability gating to tests that do not ask for ``adapter`` themselves."""
        node = request.node
        if "adapter" not in request.fixturenames and (
            node.get_closest_marker("kit_requires")
            or node.get_closest_marker("kit_requires_absent")
        ):
            request.getfixturevalue("adapter")

    # -- hooks for stateful ports -----------------------------------------------------------

    def put_probe(self, adapter: A) -> Any:
        """Store something observable in ``adapter`` and return a handle to look for it.

        Stateful port suites override this and `has_probe` (either may be ``async``).
        A suite that overrides neither is for a stateless port: the independence check is
        skipped, and these defaults store and see nothing.
        """
        return None

    def has_probe(self, adapter: A, probe: Any) -> Any:
        """Whether ``adapter`` sees what `put_probe` stored (may be ``async``)."""
        return False

    # -- hygiene: the factory and the declaration ----------------------------------------------

    @clause("kit.factory.fresh_instances", "each factory call returns a new adapter object")
    async def test_factory_returns_new_instances(
        self, adapter: A, new_adapter: Callable[[], Awaitable[A]]
    ) -> None:
        other = await new_adapter()
        assert other is not adapter, "make_adapter returned the same object twice"

    @clause(
        "kit.factory.independent",
        "what one adapter stores is not seen by a fresh adapter from the same factory",
    )
    async def test_factory_gives_independent_empty_instances(
        self, adapter: A, new_adapter: Callable[[], Awaitable[A]]
    ) -> None:
        if type(self).put_probe is ContractSuite.put_probe:
            pytest.skip(f"{self.port_key or 'this'} port keeps no state between calls")
        probe = await _maybe_await(self.put_probe(adapter))
        assert await _maybe_await(self.has_probe(adapter, probe)), (
            "the adapter does not see what was just stored in it"
        )
        other = await new_adapter()
        assert not await _maybe_await(self.has_probe(other, probe)), (
            "a fresh adapter from make_adapter sees state stored in another one: the factory "
            "must return fresh, empty, independent adapters (use a unique namespace per call)"
        )

    @clause("kit.adapter.implements_port", "the adapter has every method of its port protocol")
    def test_adapter_implements_port(self, adapter: A) -> None:
        protocol = _protocol_of(self.port_key)
        if protocol is None:
            pytest.skip("the suite names no port")
        missing = [
            name
            for name in (m.name for m in members_of(protocol))
            if not hasattr(adapter, name) and not hasattr(type(adapter), name)
        ]
        assert not missing, f"{type(adapter).__name__} lacks {', '.join(missing)}"

    @clause(
        "kit.capabilities.known",
        "every declared capability is one the port defines (no typos, no foreign names)",
    )
    def test_declared_capabilities_are_known(self, adapter: A) -> None:
        if not self.capability_names:
            pytest.skip("the port defines no optional capabilities")
        unknown = sorted(capabilities_of(adapter) - self.capability_names)
        assert not unknown, (
            f"unknown capabilities declared: {unknown}; the port defines "
            f"{sorted(self.capability_names)}"
        )

    @clause("kit.close.idempotent", "closing an adapter twice is harmless")
    async def test_close_is_idempotent(self, new_adapter: Callable[[], Awaitable[A]]) -> None:
        other = await new_adapter()
        await close_adapter(other)
        await close_adapter(other)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _protocol_of(port_key: str) -> type | None:
    if not port_key:
        return None
    from portfolio_core.ports.catalogue import port_by_key

    return port_by_key(port_key).protocol


def _capability_skip_reason(
    node: pytest.Item, adapter: object, declared: frozenset[str]
) -> str | None:
    name = type(adapter).__name__
    for mark in node.iter_markers("kit_requires"):
        missing = [str(c) for c in mark.args if str(c) not in declared]
        if missing:
            return f"{name} does not declare capability {', '.join(map(repr, missing))}"
    for mark in node.iter_markers("kit_requires_absent"):
        present = [str(c) for c in mark.args if str(c) in declared]
        if present:
            return (
                f"{name} declares {', '.join(map(repr, present))}; this check of "
                "UnsupportedError applies only without it"
            )
    return None


def _record_adapter(
    request: pytest.FixtureRequest, adapter: object, declared: frozenset[str]
) -> None:
    from portfolio_core.testing.plugin import record_adapter

    record_adapter(request.node, adapter, declared)
