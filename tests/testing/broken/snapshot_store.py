"""Deliberately broken variants of the memory SnapshotStore, one bug each.

Each names in ``clause`` the contract clause its bug must break; tests/testing/
test_snapshot_store_broken.py asserts the SnapshotStore contract suite fails on that clause.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, ClassVar

from portfolio_core.adapters.memory.snapshot_store import MemorySnapshotStore
from portfolio_core.ports.snapshot_store import Snapshot

__all__ = ["VARIANTS", "MemorySnapshotStore"]


class _Broken(MemorySnapshotStore):
    clause: ClassVar[str] = ""


class DropsSchemaVersion(_Broken):
    """Stores every snapshot as schema version 1."""

    clause = "snapshot_store.round_trip"

    async def save(self, snapshot: Snapshot) -> bool:
        return await super().save(dataclasses.replace(snapshot, schema_version=1))


class LoadsAnotherStream(_Broken):
    """Answers a missing stream with any stored snapshot."""

    clause = "snapshot_store.missing"

    async def load(self, stream: str) -> Snapshot | None:
        found = await super().load(stream)
        if found is None and self._stored:
            return await super().load(next(iter(self._stored)))
        return found


class LastWriteWins(_Broken):
    """Overwrites a newer snapshot with an older one."""

    clause = "snapshot_store.latest_wins"

    async def save(self, snapshot: Snapshot) -> bool:
        self._stored.pop(snapshot.stream, None)
        return await super().save(snapshot)


class RacyReadThenWrite(_Broken):
    """Compares versions, yields to the loop, then writes: a slow older save wins."""

    clause = "snapshot_store.concurrent"

    async def save(self, snapshot: Snapshot) -> bool:
        held = await self.load(snapshot.stream)
        await asyncio.sleep(0.001 * (20 - snapshot.version))  # older versions write last
        if held is not None and held.version > snapshot.version:
            return False
        await super().delete(snapshot.stream)
        return await super().save(snapshot)


class SharesState(_Broken):
    """Keeps the caller's dict itself, not a copy."""

    clause = "snapshot_store.values"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._objects: dict[str, Snapshot] = {}

    async def save(self, snapshot: Snapshot) -> bool:
        saved = await super().save(snapshot)
        if saved:
            self._objects[snapshot.stream] = snapshot
        return saved

    async def load(self, stream: str) -> Snapshot | None:
        found = await super().load(stream)
        return self._objects.get(stream, found) if found is not None else None


class DeleteIsNoop(_Broken):
    clause = "snapshot_store.delete"

    async def delete(self, stream: str) -> None:
        return None


class AcceptsNaiveTime(_Broken):
    """Stores an unvalidated snapshot when its time has no zone (keeps the previous one out)."""

    clause = "snapshot_store.invalid"

    async def save(self, snapshot: Snapshot) -> bool:
        if snapshot.taken_at.tzinfo is None:
            self._stored.pop(snapshot.stream, None)
            return True
        return await super().save(snapshot)


class ForgetsEveryOtherSave(_Broken):
    """Silently drops every second save while still answering True (only the model sees it)."""

    clause = "snapshot_store.model"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._saves = 0

    async def save(self, snapshot: Snapshot) -> bool:
        self._saves += 1
        if self._saves % 2 == 0:
            held = await self.load(snapshot.stream)
            return held is None or held.version <= snapshot.version
        return await super().save(snapshot)


VARIANTS: list[type[_Broken]] = [
    DropsSchemaVersion,
    LoadsAnotherStream,
    LastWriteWins,
    RacyReadThenWrite,
    SharesState,
    DeleteIsNoop,
    AcceptsNaiveTime,
    ForgetsEveryOtherSave,
]
