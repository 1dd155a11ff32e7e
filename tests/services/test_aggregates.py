"""The aggregate loader: latest snapshot + every event after it, snapshots by policy, old
snapshot schemas upcast, and a snapshot never hiding (or inventing) an event."""

from __future__ import annotations

from typing import Any

import pytest

from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.memory.snapshot_store import MemorySnapshotStore
from portfolio_core.ports.errors import UnavailableError, UpcastError
from portfolio_core.ports.event_store import NewEvent, RecordedEvent
from portfolio_core.ports.snapshot_store import Snapshot
from portfolio_core.services.aggregates import Aggregate, AggregateLoader, every
from portfolio_core.services.upcasting import Upcasters


def evolve(state: dict[str, Any], event: RecordedEvent) -> dict[str, Any]:
    return {"total": state["total"] + event.data["n"], "seen": state["seen"] + [event.version]}


def counter(upcasters: Upcasters | None = None) -> Aggregate[dict[str, Any]]:
    return Aggregate(
        name="Counter",
        initial=lambda: {"total": 0, "seen": []},
        evolve=evolve,
        to_snapshot=lambda state: state,
        from_snapshot=lambda data: dict(data),
        snapshot_upcasters=upcasters,
    )


async def append_n(store: MemoryEventStore, stream: str, first: int, count: int) -> None:
    await store.append(stream, [NewEvent("Added", {"n": first + i}) for i in range(count)])


def replayed_state(count: int) -> dict[str, Any]:
    return {"total": sum(range(1, count + 1)), "seen": list(range(1, count + 1))}


@pytest.mark.parametrize("page_size", [1, 3, 7, 1000])
async def test_snapshot_then_later_events_equals_full_replay(page_size: int) -> None:
    events, snapshots = MemoryEventStore(), MemorySnapshotStore()
    loader = AggregateLoader(events, snapshots, counter(), policy=every(5), page_size=page_size)
    await append_n(events, "c", 1, 7)
    first = await loader.load("c")
    assert (first.version, first.snapshot_version, first.replayed) == (7, 0, 7)
    stored = await snapshots.load("c")
    assert stored is not None, "the policy did not snapshot"
    assert stored.version == 7

    await append_n(events, "c", 8, 3)  # appended after the snapshot: must not be hidden
    second = await loader.load("c")
    assert (second.version, second.snapshot_version, second.replayed) == (10, 7, 3)
    assert second.state == replayed_state(10)
    assert (await snapshots.load("c")).version == 7  # type: ignore[union-attr]  # 3 < 5


async def test_snapshot_ahead_of_the_stream_is_ignored() -> None:
    events, snapshots = MemoryEventStore(), MemorySnapshotStore()
    await append_n(events, "c", 1, 2)
    await snapshots.save(Snapshot("c", 9, {"total": 999, "seen": []}))
    loaded = await AggregateLoader(events, snapshots, counter(), policy=every(100)).load("c")
    assert (loaded.version, loaded.snapshot_version) == (2, 0)
    assert loaded.state == replayed_state(2)


async def test_missing_stream_loads_initial_state() -> None:
    loader = AggregateLoader(MemoryEventStore(), MemorySnapshotStore(), counter())
    loaded = await loader.load("nothing")
    assert (loaded.state, loaded.version) == ({"total": 0, "seen": []}, 0)


async def test_old_snapshot_schema_is_upcast() -> None:
    upcasters = Upcasters()
    upcasters.register("Counter", 1, lambda d: {"total": d["sum"], "seen": d["versions"]})
    events, snapshots = MemoryEventStore(), MemorySnapshotStore()
    await append_n(events, "c", 1, 4)
    await snapshots.save(Snapshot("c", 3, {"sum": 6, "versions": [1, 2, 3]}, schema_version=1))
    loader = AggregateLoader(events, snapshots, counter(upcasters), policy=every(1))
    loaded = await loader.load("c")
    assert (loaded.snapshot_version, loaded.state) == (3, replayed_state(4))
    saved = await snapshots.load("c")
    assert saved is not None
    assert (saved.version, saved.schema_version) == (4, 2)


async def test_failing_snapshot_upcaster_names_stream_and_version() -> None:
    upcasters = Upcasters()
    upcasters.register("Counter", 1, lambda d: {"total": d["missing"]})
    events, snapshots = MemoryEventStore(), MemorySnapshotStore()
    await append_n(events, "c", 1, 2)
    await snapshots.save(Snapshot("c", 2, {"sum": 3}))
    with pytest.raises(UpcastError) as info:
        await AggregateLoader(events, snapshots, counter(upcasters)).load("c")
    assert (info.value.record, info.value.schema_version) == ("snapshot:c", 1)


async def test_snapshot_from_newer_code_is_ignored() -> None:
    events, snapshots = MemoryEventStore(), MemorySnapshotStore()
    await append_n(events, "c", 1, 3)
    await snapshots.save(Snapshot("c", 3, {"shape": "from the future"}, schema_version=5))
    loaded = await AggregateLoader(events, snapshots, counter(), policy=every(100)).load("c")
    assert (loaded.snapshot_version, loaded.state) == (0, replayed_state(3))


class UnavailableSnapshots(MemorySnapshotStore):
    async def save(self, snapshot: Snapshot) -> bool:
        raise UnavailableError("down", port="SnapshotStore")


async def test_unavailable_snapshot_store_does_not_fail_the_load() -> None:
    events = MemoryEventStore()
    await append_n(events, "c", 1, 3)
    loader = AggregateLoader(events, UnavailableSnapshots(), counter(), policy=every(1))
    loaded = await loader.load("c")
    assert loaded.state == replayed_state(3)
    assert loader.snapshot_failures == 1


def test_every_refuses_zero() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        every(0)


def test_snapshot_schema_follows_the_upcasters() -> None:
    upcasters = Upcasters()
    assert counter(upcasters).snapshot_schema == 1
    upcasters.register("Counter", 1, lambda d: d)
    assert counter(upcasters).snapshot_schema == 2
