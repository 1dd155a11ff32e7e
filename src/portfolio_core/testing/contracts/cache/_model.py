"""The state machines against pure models written from the port docstring."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from portfolio_core.ports.cache import Cache, CacheCapability
from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.testing._factories import with_options
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.cache._common import (
    MACHINE_ROOM,
    keys_st,
    ttls_st,
    values_st,
)
from portfolio_core.testing.loop import accepts_keyword
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

# -- state machines -------------------------------------------------------------------------------


class CacheMachine(AdapterMachine[Cache]):
    """Any operation sequence behaves like a dict of ``key -> (value, deadline)``."""

    def __init__(self, factory: Factory, *, exact: bool = False, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.model: dict[str, tuple[Any, float | None]] = {}
        self.ttl = supports(self.adapter, CacheCapability.TTL) and self.controls_time
        # a bounded cache whose bound the kit does not know may evict at any time; one made
        # with room to spare (exact) may not
        self.bounded = supports(self.adapter, CacheCapability.BOUNDED) and not exact

    def live(self, key: str) -> Any | None:
        value, deadline = self.model.get(key, (None, None))
        if deadline is not None and self.clock() >= deadline:
            return None
        return value

    def live_keys(self) -> list[str]:
        return sorted(k for k in self.model if self.live(k) is not None)

    @rule(key=keys_st, value=values_st)
    def put(self, key: str, value: Any) -> None:
        self.run(self.adapter.put(key, value))
        self.model[key] = (value, None)

    @precondition(lambda self: self.ttl)
    @rule(key=keys_st, value=values_st, ttl=ttls_st)
    def put_ttl(self, key: str, value: Any, ttl: float) -> None:
        self.run(self.adapter.put(key, value, ttl=ttl))
        self.model[key] = (value, self.clock() + ttl)

    @rule(items=st.dictionaries(keys_st, values_st, max_size=3))
    def put_many(self, items: dict[str, Any]) -> None:
        self.run(self.adapter.put_many(items))
        for key, value in items.items():
            self.model[key] = (value, None)

    @rule(key=keys_st, bad=st.sampled_from([(1,), None, b"x"]))
    def put_bad(self, key: str, bad: Any) -> None:
        with pytest.raises(InvalidInputError):
            self.run(self.adapter.put_many({"a": 1, key: bad}))

    @precondition(lambda self: self.ttl)
    @rule(seconds=st.floats(0, 6))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(key=keys_st)
    def get(self, key: str) -> None:
        got = self.run(self.adapter.get(key))
        if self.bounded and got is None:
            self.model.pop(key, None)  # a bounded cache may have evicted it
            return
        assert got == self.live(key), f"get({key!r}) gave {got!r}, model has {self.live(key)!r}"

    @rule(key=keys_st)
    def exists(self, key: str) -> None:
        got = self.run(self.adapter.exists(key))
        if self.bounded and not got:
            self.model.pop(key, None)
            return
        assert got == (self.live(key) is not None), f"exists({key!r}) gave {got!r}"

    @rule(keys=st.lists(keys_st, max_size=4))
    def get_many(self, keys: list[str]) -> None:
        got = self.run(self.adapter.get_many(keys))
        expected = {k: self.live(k) for k in keys if self.live(k) is not None}
        if self.bounded:
            assert all(expected.get(k) == v for k, v in got.items()), got
            return
        assert got == expected, f"get_many({keys!r}) gave {got!r}, expected {expected!r}"

    @rule(key=keys_st)
    def delete(self, key: str) -> None:
        got = self.run(self.adapter.delete(key))
        expected = self.live(key) is not None
        self.model.pop(key, None)
        if not self.bounded:
            assert got == expected, f"delete({key!r}) returned {got!r}, expected {expected!r}"

    @rule()
    def clear(self) -> None:
        self.run(self.adapter.clear())
        self.model.clear()

    @precondition(lambda self: supports(self.adapter, CacheCapability.ENUMERATE))
    @rule()
    def keys(self) -> None:
        got = sorted(self.run(self.adapter.keys()))  # type: ignore[attr-defined]
        counted = self.run(self.adapter.count())  # type: ignore[attr-defined]
        if self.bounded:
            assert set(got) <= set(self.live_keys()), got
            return
        assert got == self.live_keys(), f"keys() gave {got!r}, expected {self.live_keys()!r}"
        assert counted == len(got), f"count() gave {counted}, keys() listed {len(got)}"


class ModelClauses(ContractSuite[Cache]):
    """The state machines against pure models written from the port docstring."""

    @clause("cache.model", "any sequence of operations behaves like the reference model")
    def test_state_machine(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        if accepts_keyword(make_adapter, "max_entries"):
            # the machine uses five keys: with room for many more, a bounded cache must
            # behave exactly like the model (it may never evict)
            run_machine(
                CacheMachine,
                with_options(make_adapter, max_entries=MACHINE_ROOM),
                kit_settings,
                exact=True,
            )
        else:
            run_machine(CacheMachine, make_adapter, kit_settings)
