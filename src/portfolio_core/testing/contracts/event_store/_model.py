"""The state machine against a pure model written from the port docstring."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import (
    NotFoundError,
    WrongExpectedVersionError,
)
from portfolio_core.ports.event_store import (
    EventQuery,
    EventStore,
    EventStoreCapability,
    NewEvent,
    StreamState,
    Where,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.event_store._common import (
    event_ids,
)
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite

# Only valid input: U+0000 is refused by every adapter (clause event_store.append.rejects_nul
# checks that), so generated text never contains it, nor lone surrogates (not UTF-8, as with
# st.text()'s default alphabet). Streams, types and keys are fixed ASCII.
streams = st.sampled_from(["a", "b", "c"])
types = st.sampled_from(["X", "Y"])
texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=3)
scalars = st.one_of(
    st.integers(-3, 3), st.sampled_from([-1.5, 0.5, 2.0]), st.booleans(), texts, st.none()
)
payloads = st.dictionaries(
    st.sampled_from(["k", "n", "o"]),
    st.one_of(scalars, st.dictionaries(st.sampled_from(["k", "n"]), scalars, max_size=2)),
    max_size=3,
)
where_conditions = st.one_of(
    st.builds(Where, st.sampled_from(["data.k", "data.o.k", "data.o"]), st.just("exists")),
    st.builds(
        Where,
        st.sampled_from(["data.k", "data.n", "data.o.k"]),
        st.sampled_from(["==", "!="]),
        scalars,
    ),
    st.builds(
        Where,
        st.sampled_from(["data.k", "data.n", "data.o.n"]),
        st.sampled_from(["<", "<=", ">", ">="]),
        st.one_of(st.integers(-3, 3), st.sampled_from([-1.5, 0.5]), texts),
    ),
    st.builds(
        Where,
        st.sampled_from(["data.k", "data.o.k"]),
        st.just("in"),
        st.lists(scalars, min_size=1, max_size=3),
    ),
)


def _model_where(data: dict[str, Any], condition: Where) -> bool:
    """The port's where semantics, written from its docstring (the kit's own model)."""
    value: Any = data
    for key in condition.path.split(".")[1:]:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]

    def kind(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return repr(v)  # True, False and None each equal only themselves
        if isinstance(v, (int, float)):
            return "number"
        return "str" if isinstance(v, str) else "container"

    def equal(a: Any, b: Any) -> bool:
        return kind(a) == kind(b) and (kind(a) not in ("number", "str") or a == b)

    op, want = condition.op, condition.value
    if op == "exists":
        return True
    if op == "==":
        return equal(value, want)
    if op == "!=":
        return not equal(value, want)
    if op == "in":
        return any(equal(value, w) for w in want)
    if kind(value) != kind(want):
        return False
    return bool(
        {"<": value < want, "<=": value <= want, ">": value > want, ">=": value >= want}[op]
    )


class EventStoreMachine(AdapterMachine[EventStore]):
    """Random appends, retries and reads against a pure model of streams and a global log."""

    def __init__(self, factory: Any, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.log: list[tuple[str, str, str, dict[str, Any]]] = []  # (stream, id, type, data)
        self.last_batch: tuple[str, list[NewEvent], Any] | None = None
        self.counter = 0

    def _version(self, stream: str) -> int:
        return sum(1 for s, *_ in self.log if s == stream)

    @rule(
        stream=streams,
        kinds=st.lists(st.tuples(types, payloads), min_size=1, max_size=3),
        mode=st.sampled_from(["right", "wrong", "any", "no_stream", "exists"]),
    )
    def append(self, stream: str, kinds: list[tuple[str, dict[str, Any]]], mode: str) -> None:
        batch = []
        for t, d in kinds:
            self.counter += 1
            batch.append(NewEvent(t, d, id=f"e{self.counter}"))
        version = self._version(stream)
        expected: Any = {
            "right": version,
            "wrong": version + 1,
            "any": StreamState.ANY,
            "no_stream": StreamState.NO_STREAM,
            "exists": StreamState.STREAM_EXISTS,
        }[mode]
        ok = mode in ("right", "any") or (mode == "no_stream") == (version == 0)
        if mode == "wrong":
            ok = False
        if ok:
            result = self.run(self.adapter.append(stream, batch, expected))
            assert result.version == version + len(batch), (result, version)
            self.log.extend((stream, e.id, e.type, dict(e.data)) for e in batch)
            self.last_batch = (stream, batch, expected)
        else:
            with pytest.raises(WrongExpectedVersionError):
                self.run(self.adapter.append(stream, batch, expected))

    @precondition(lambda self: self.last_batch is not None)
    @rule()
    def retry_last(self) -> None:
        assert self.last_batch is not None
        stream, batch, _ = self.last_batch
        result = self.run(self.adapter.append(stream, copy.copy(batch), StreamState.ANY))
        stored = [i for s, i, *_ in self.log if s == stream]
        assert result.version == stored.index(batch[-1].id) + 1

    @rule(stream=streams, start=st.integers(0, 6), limit=st.none() | st.integers(0, 4))
    def read(self, stream: str, start: int, limit: int | None) -> None:
        mine = [i for s, i, *_ in self.log if s == stream]
        if not mine:
            with pytest.raises(NotFoundError):
                self.run(self.adapter.read(stream, start, limit))
            return
        got = self.run(self.adapter.read(stream, start, limit))
        want = mine[max(start, 1) - 1 :]
        assert event_ids(got) == (want if limit is None else want[:limit])

    @rule(t=types)
    def query_type(self, t: str) -> None:
        if not supports(self.adapter, EventStoreCapability.QUERY):
            return
        got = self.run(self.adapter.query(EventQuery(types=frozenset({t}))))
        assert event_ids(got) == [i for _, i, ty, _ in self.log if ty == t]

    @rule(key=st.sampled_from(["k", "n"]), value=st.integers(-3, 3) | st.booleans())
    def query_data(self, key: str, value: Any) -> None:
        if not supports(self.adapter, EventStoreCapability.QUERY):
            return
        got = self.run(self.adapter.query(EventQuery(data={key: value})))

        def same(a: Any) -> bool:
            return isinstance(a, bool) == isinstance(value, bool) and a == value

        assert event_ids(got) == [i for *_, i, _, d in self.log if key in d and same(d[key])]

    @rule(limit=st.none() | st.integers(1, 4), t=st.none() | types)
    def query_backwards(self, limit: int | None, t: str | None) -> None:
        if not supports(self.adapter, EventStoreCapability.QUERY):
            return
        kinds = frozenset({t}) if t else frozenset()
        got = self.run(self.adapter.query(EventQuery(types=kinds, backwards=True, limit=limit)))
        want = [i for _, i, ty, _ in reversed(self.log) if t is None or ty == t]
        assert event_ids(got) == (want if limit is None else want[:limit])

    @rule(conditions=st.lists(where_conditions, min_size=1, max_size=2))
    def query_where(self, conditions: list[Where]) -> None:
        if not supports(self.adapter, EventStoreCapability.QUERY):
            return
        got = self.run(self.adapter.query(EventQuery(where=tuple(conditions))))
        want = [i for *_, i, _, d in self.log if all(_model_where(d, c) for c in conditions)]
        assert event_ids(got) == want, f"where {conditions}"

    @invariant()
    def global_log(self) -> None:
        events = self.run(self.adapter.read_all())
        assert event_ids(events) == [i for _, i, *_ in self.log]
        positions = [e.position for e in events]
        assert positions == sorted(set(positions))
        if supports(self.adapter, EventStoreCapability.GAPLESS):
            assert positions == list(range(1, len(positions) + 1))


class ModelClauses(ContractSuite[EventStore]):
    """The state machine against a pure model written from the port docstring."""

    @clause("event_store.model", "any sequence of operations behaves like the reference model")
    def test_state_machine(self, make_adapter: Any, kit_settings: KitSettings) -> None:
        run_machine(EventStoreMachine, make_adapter, kit_settings)
