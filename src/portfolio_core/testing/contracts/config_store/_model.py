"""ConfigStore clauses: the state machine against a pure model written from the port docstring."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from portfolio_core.ports.config_store import (
    DELETE,
    ConfigStore,
)
from portfolio_core.ports.errors import (
    NotFoundError,
    StaleVersionError,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.config_store._common import (
    WAIT,
    next_change_set,
)
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite

keys = st.sampled_from(["a.x", "a.y", "b.x", "b.y"])
values = st.one_of(
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=3),
    st.lists(st.integers(0, 2), max_size=2),
    st.just(DELETE),
)


def _json(value: Any) -> str:
    """A JSON value's canonical text: ``0`` and ``False``, or ``1`` and ``1.0``, differ here
    although Python's ``==`` calls them equal, and so do they in a config store."""
    return json.dumps(value, sort_keys=True, default=repr)


class ConfigStoreMachine(AdapterMachine[ConfigStore]):
    """Random applies, stale applies, rollbacks and reads against a list of whole states; a
    watcher of ``a.`` opened at the start must deliver exactly the model's changes."""

    def __init__(self, factory: Any, *, watch_timeout: float = WAIT, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.watch_timeout = watch_timeout
        self.states: list[dict[str, Any]] = [{}]
        self.changed: list[dict[str, Any]] = [{}]  # per version: key -> value or DELETE
        self.watcher = self.adapter.watch("a.", from_version=0)
        self.watched = 0

    @property
    def version(self) -> int:
        return len(self.states) - 1

    def _commit(self, updates: dict[str, Any]) -> None:
        state = dict(self.states[-1])
        for key, value in updates.items():
            if value is DELETE:
                state.pop(key, None)
            else:
                state[key] = value
        self.states.append(state)
        self.changed.append(updates)

    @rule(
        updates=st.dictionaries(keys, values, min_size=1, max_size=3),
        mode=st.sampled_from(["none", "right", "stale"]),
    )
    def apply(self, updates: dict[str, Any], mode: str) -> None:
        expected = {"none": None, "right": self.version, "stale": self.version + 1}[mode]
        if mode == "stale":
            with pytest.raises(StaleVersionError):
                self.run(self.adapter.apply(updates, expected_version=expected))
            return
        got = self.run(self.adapter.apply(updates, expected_version=expected))
        self._commit(updates)
        assert got == self.version, f"apply returned {got}, the model is at {self.version}"

    @rule(data=st.data(), prefix=st.sampled_from(["", "a.", "b."]))
    def rollback(self, data: st.DataObject, prefix: str) -> None:
        target = data.draw(st.integers(0, self.version + 1))
        if target > self.version:
            with pytest.raises(NotFoundError):
                self.run(self.adapter.rollback(target, prefix=prefix))
            return
        now, then = self.states[-1], self.states[target]
        updates: dict[str, Any] = {k: DELETE for k in now if k.startswith(prefix) and k not in then}
        updates.update(
            {
                k: v
                for k, v in then.items()
                if k.startswith(prefix) and (k not in now or _json(now[k]) != _json(v))
            }
        )
        got = self.run(self.adapter.rollback(target, prefix=prefix))
        self._commit(updates)
        assert got == self.version
        wanted = {k: v for k, v in then.items() if k.startswith(prefix)}
        have = dict(self.run(self.adapter.read(prefix)))
        assert _json(have) == _json(wanted), f"rollback to {target} restored {have}, not {wanted}"

    @rule(data=st.data())
    def read_at(self, data: st.DataObject) -> None:
        version = data.draw(st.integers(0, self.version))
        snap = self.run(self.adapter.read(version=version))
        assert snap.version == version
        assert _json(dict(snap)) == _json(self.states[version])

    @precondition(lambda self: self.watched < self.version)
    @rule()
    def drain_watcher(self) -> None:
        for version in range(self.watched + 1, self.version + 1):
            wanted = {k: v for k, v in self.changed[version].items() if k.startswith("a.")}
            if not wanted:
                continue
            got = self.run(next_change_set(self.watcher, self.watch_timeout))
            assert got.version == version, (
                f"the watcher delivered version {got.version}, expected {version}: skipped or "
                "reordered"
            )
            assert _json(got.updates()) == _json(wanted), (got.updates(), wanted)
        self.watched = self.version

    @invariant()
    def current(self) -> None:
        assert self.run(self.adapter.current_version()) == self.version
        assert _json(dict(self.run(self.adapter.read()))) == _json(self.states[-1])

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.watcher.aclose())  # type: ignore[attr-defined]
        super().teardown()


class ModelClauses(ContractSuite[ConfigStore]):
    """The state machine against a pure model written from the port docstring."""

    #: seconds a watcher may take to deliver a change set (the suite's watch_timeout)
    watch_timeout: float = WAIT

    @clause(
        "config_store.model",
        "any sequence of applies, rollbacks, reads and watches behaves like the reference model",
    )
    def test_state_machine(self, make_adapter: Any, kit_settings: KitSettings) -> None:
        run_machine(
            ConfigStoreMachine, make_adapter, kit_settings, watch_timeout=self.watch_timeout
        )
