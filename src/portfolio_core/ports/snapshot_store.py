"""SnapshotStore: the latest saved state of each event stream's aggregate.

A snapshot is a cache of an aggregate's state after the first ``version`` events of its
stream; an aggregate loader (``portfolio_core.services.aggregates``) starts from it and
applies only the events after it. Losing a snapshot costs time, never data: the events
remain the truth.

Contract
--------
* ``save(snapshot)`` stores it unless the store already holds a snapshot of that stream
  with a *higher* ``version``; it returns whether it stored it. Saving at the same version
  replaces the stored one (a newer schema of the same state). Of concurrent saves of one
  stream, the stored snapshot is one with the highest version (a slow writer of an older
  state never overwrites a newer one).
* ``load(stream)`` returns the stored snapshot with everything as saved (``state`` equal as
  JSON, ``version``, ``schema_version``), or ``None`` when there is none.
* Snapshots are values: changing the mapping given to ``save`` afterwards, or a loaded
  snapshot's state, does not change what is stored.
* ``delete(stream)`` removes the stream's snapshot; deleting a missing one is harmless.
* Bad input raises :class:`~portfolio_core.ports.errors.InvalidInputError` and stores
  nothing: an empty stream name or one longer than :data:`MAX_STREAM_NAME` characters, or
  one holding U+0000 or a lone surrogate; ``version`` or ``schema_version`` not an int >= 1;
  a ``state`` that is not a JSON object under the stored-value rule of
  :mod:`portfolio_core.ports.values`; a snapshot larger than the adapter's
  ``max_snapshot_bytes`` once encoded.
* An adapter declaring ``PERSISTENT`` keeps snapshots across instances opened on the same
  storage; ``SHARED``: several processes may save and load concurrently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = ["MAX_STREAM_NAME", "Snapshot", "SnapshotStore", "SnapshotStoreCapability"]

MAX_STREAM_NAME = 255
"""The longest stream name, in characters (the EventStore's limit)."""


class SnapshotStoreCapability(StrEnum):
    PERSISTENT = "snapshot_store.persistent"
    SHARED = "snapshot_store.shared"
    """Several processes may save and load concurrently."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of ``stream``'s aggregate after its first ``version`` events.

    ``schema_version`` is the version of the state's shape (for upcasting old snapshots);
    ``taken_at`` is informative (when the state was computed).
    """

    stream: str
    version: int
    state: Mapping[str, Any]
    schema_version: int = 1
    taken_at: datetime = field(default_factory=_now)


@runtime_checkable
class SnapshotStore(Protocol):
    """Async store of the latest snapshot per stream; see the module docstring."""

    async def save(self, snapshot: Snapshot) -> bool:
        """Store ``snapshot`` unless a later one of its stream is stored; whether it was."""
        ...

    async def load(self, stream: str) -> Snapshot | None:
        """The stored snapshot of ``stream``, or ``None``."""
        ...

    async def delete(self, stream: str) -> None:
        """Remove the snapshot of ``stream``; idempotent."""
        ...
