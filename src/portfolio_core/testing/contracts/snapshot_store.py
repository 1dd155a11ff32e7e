"""Contract suite of the SnapshotStore port (async, stateful), with its state machine.

Every test states one clause of :mod:`portfolio_core.ports.snapshot_store`. The state
machine (:class:`SnapshotStoreMachine`) drives the adapter beside a pure model written from
the port's docstring: per stream, the JSON text of the stored state and its two versions.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.snapshot_store import (
    MAX_STREAM_NAME,
    Snapshot,
    SnapshotStore,
    SnapshotStoreCapability,
)
from portfolio_core.ports.values import MAX_VALUE_DEPTH
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite

__all__ = ["SnapshotStoreContract", "SnapshotStoreMachine"]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class SnapshotStoreContract(ContractSuite[SnapshotStore]):
    """The promises of :class:`~portfolio_core.ports.SnapshotStore`
    (docs/ports/snapshot_store.md)."""

    port_key = "snapshot_store"
    capability_names = frozenset(c.value for c in SnapshotStoreCapability)

    async def put_probe(self, adapter: SnapshotStore) -> str:
        await adapter.save(Snapshot("kit-probe", 1, {"probe": True}))
        return "kit-probe"

    async def has_probe(self, adapter: SnapshotStore, probe: str) -> bool:
        return await adapter.load(probe) is not None

    @clause("snapshot_store.round_trip", "load returns the saved snapshot, every field as saved")
    async def test_round_trip(self, adapter: SnapshotStore) -> None:
        taken = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        state = {"n": 3, "f": 0.5, "ok": True, "none": None, "nested": {"l": [1, "two", {}]}}
        saved = Snapshot("order-1", 7, state, schema_version=2, taken_at=taken)
        assert await adapter.save(saved) is True
        loaded = await adapter.load("order-1")
        assert loaded is not None, "a saved snapshot was not found"
        assert (loaded.stream, loaded.version, loaded.schema_version) == ("order-1", 7, 2)
        assert _json(loaded.state) == _json(state)
        assert loaded.taken_at == taken, f"taken_at {loaded.taken_at} is not {taken}"

    @clause("snapshot_store.missing", "load of a stream without a snapshot returns None")
    async def test_missing(self, adapter: SnapshotStore) -> None:
        assert await adapter.load("nothing-here") is None
        await adapter.save(Snapshot("other", 1, {}))
        assert await adapter.load("nothing-here") is None

    @clause(
        "snapshot_store.latest_wins",
        "a snapshot older than the stored one is not stored (save returns False); the same "
        "version replaces it",
    )
    async def test_latest_wins(self, adapter: SnapshotStore) -> None:
        assert await adapter.save(Snapshot("s", 5, {"at": 5}))
        assert await adapter.save(Snapshot("s", 3, {"at": 3})) is False
        loaded = await adapter.load("s")
        assert loaded is not None
        assert loaded.version == 5
        assert loaded.state == {"at": 5}
        assert await adapter.save(Snapshot("s", 5, {"at": "5b"}, schema_version=2))
        loaded = await adapter.load("s")
        assert loaded is not None
        assert loaded.state == {"at": "5b"}
        assert loaded.schema_version == 2
        assert await adapter.save(Snapshot("s", 9, {"at": 9}))
        loaded = await adapter.load("s")
        assert loaded is not None
        assert loaded.version == 9

    @clause(
        "snapshot_store.concurrent",
        "of concurrent saves of one stream, the stored snapshot is one of the highest version",
    )
    async def test_concurrent_saves(self, adapter: SnapshotStore) -> None:
        versions = [3, 11, 7, 2, 11, 5, 9, 1]
        results = await asyncio.gather(
            *(adapter.save(Snapshot("race", v, {"v": v, "i": i})) for i, v in enumerate(versions))
        )
        assert any(results)
        loaded = await adapter.load("race")
        assert loaded is not None, "no snapshot stored"
        assert loaded.version == 11, f"stored {loaded}"
        assert loaded.state["v"] == 11

    @clause("snapshot_store.values", "saved and loaded states are copies, not shared objects")
    async def test_values(self, adapter: SnapshotStore) -> None:
        state: dict[str, Any] = {"items": [1, 2]}
        await adapter.save(Snapshot("s", 1, state))
        state["items"].append(3)
        loaded = await adapter.load("s")
        assert loaded is not None
        assert loaded.state == {"items": [1, 2]}
        loaded.state["items"].append(4)
        again = await adapter.load("s")
        assert again is not None
        assert again.state == {"items": [1, 2]}

    @clause("snapshot_store.delete", "delete removes the snapshot; deleting again is harmless")
    async def test_delete(self, adapter: SnapshotStore) -> None:
        await adapter.save(Snapshot("a", 2, {}))
        await adapter.save(Snapshot("b", 2, {}))
        await adapter.delete("a")
        assert await adapter.load("a") is None
        assert await adapter.load("b") is not None, "delete removed another stream's snapshot"
        await adapter.delete("a")
        await adapter.delete("never")
        assert await adapter.save(Snapshot("a", 1, {"again": 1})), "a deleted stream refused"

    @clause(
        "snapshot_store.invalid",
        "bad input raises InvalidInputError naming the field and stores nothing",
    )
    @pytest.mark.parametrize(
        "case",
        [
            "empty_stream",
            "long_stream",
            "nul_stream",
            "surrogate_stream",
            "version_zero",
            "version_bool",
            "schema_version_zero",
            "state_not_mapping",
            "state_nan",
            "state_tuple",
            "state_int_key",
            "state_too_deep",
            "state_object",
            "naive_taken_at",
            "oversized",
        ],
    )
    async def test_invalid(self, adapter: SnapshotStore, case: str) -> None:
        await adapter.save(Snapshot("keep", 1, {"kept": 1}))
        deep: Any = 1
        for _ in range(MAX_VALUE_DEPTH + 1):
            deep = [deep]
        limit = int(getattr(adapter, "max_snapshot_bytes", 16 * 1_048_576))
        fields: dict[str, tuple[str, dict[str, Any]]] = {
            "empty_stream": ("stream", {"stream": ""}),
            "long_stream": ("stream", {"stream": "s" * (MAX_STREAM_NAME + 1)}),
            "nul_stream": ("stream", {"stream": "a\x00b"}),
            "surrogate_stream": ("stream", {"stream": "a\udc80"}),
            "version_zero": ("version", {"version": 0}),
            "version_bool": ("version", {"version": True}),
            "schema_version_zero": ("schema_version", {"schema_version": 0}),
            "state_not_mapping": ("state", {"state": [1, 2]}),
            "state_nan": ("state", {"state": {"x": float("nan")}}),
            "state_tuple": ("state", {"state": {"x": (1, 2)}}),
            "state_int_key": ("state", {"state": {"x": {1: "one"}}}),
            "state_too_deep": ("state", {"state": {"x": deep}}),
            "state_object": ("state", {"state": {"x": object()}}),
            "naive_taken_at": ("taken_at", {"taken_at": datetime(2026, 1, 1)}),
            "oversized": ("state", {"state": {"x": "y" * (limit + 1)}}),
        }
        field, change = fields[case]
        kwargs: dict[str, Any] = {"stream": "keep", "version": 5, "state": {"new": 1}}
        kwargs.update(change)
        with pytest.raises(InvalidInputError) as info:
            await adapter.save(Snapshot(**kwargs))
        assert info.value.field == field, f"{case}: the error names {info.value.field!r}"
        loaded = await adapter.load("keep")
        assert loaded is not None, f"{case}: the stored snapshot was lost"
        assert (loaded.version, loaded.state) == (1, {"kept": 1}), (
            f"{case}: a refused snapshot was stored"
        )

    @clause("snapshot_store.invalid_stream", "load and delete refuse a bad stream name")
    @pytest.mark.parametrize("stream", ["", "a\x00b", 7])
    async def test_invalid_stream_reads(self, adapter: SnapshotStore, stream: Any) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.load(stream)
        with pytest.raises(InvalidInputError):
            await adapter.delete(stream)

    @clause(
        "snapshot_store.model",
        "any sequence of saves, loads and deletes matches the pure model",
    )
    def test_state_machine(self, make_adapter: Any, kit_settings: KitSettings) -> None:
        run_machine(SnapshotStoreMachine, make_adapter, kit_settings)


_streams = st.sampled_from(["a", "b", "ü-stream", "x" * 40])
_states = st.dictionaries(
    st.text(max_size=4),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    ),
    max_size=4,
)


class SnapshotStoreMachine(AdapterMachine[SnapshotStore]):
    """Saves, loads and deletes against a dict of ``stream -> (version, schema, state)``."""

    def __init__(self, factory: Any, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.model: dict[str, tuple[int, int, str]] = {}

    @rule(
        stream=_streams,
        version=st.integers(1, 12),
        schema=st.integers(1, 3),
        state=_states,
    )
    def save(self, stream: str, version: int, schema: int, state: dict[str, Any]) -> None:
        stored = self.run(self.adapter.save(Snapshot(stream, version, state, schema)))
        held = self.model.get(stream)
        expected = held is None or held[0] <= version
        assert stored is expected, (
            f"save of {stream!r} at {version} returned {stored}; stored version is "
            f"{held[0] if held else None}"
        )
        if expected:
            self.model[stream] = (version, schema, _json(state))

    @rule(stream=_streams)
    def load(self, stream: str) -> None:
        loaded = self.run(self.adapter.load(stream))
        held = self.model.get(stream)
        if held is None:
            assert loaded is None, f"{stream!r} has no snapshot but load returned {loaded}"
            return
        assert loaded is not None, f"the snapshot of {stream!r} is missing"
        got = (loaded.version, loaded.schema_version, _json(loaded.state))
        assert got == held, f"load({stream!r}) gave {got}, the model holds {held}"

    @rule(stream=_streams)
    def delete(self, stream: str) -> None:
        self.run(self.adapter.delete(stream))
        self.model.pop(stream, None)
