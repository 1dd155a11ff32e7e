"""The reference SnapshotStore: every clause of the port, in process, as simply as possible.

Snapshots are kept encoded (as JSON text), so nothing a caller does to a saved or loaded
state changes the store. Thread-safe, usable from several event loops.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.snapshots import (
    DEFAULT_MAX_SNAPSHOT_BYTES,
    decode_snapshot,
    encode_snapshot,
    validate_stream,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.snapshot_store import Snapshot

__all__ = ["MemorySnapshotStore", "MemorySnapshotStoreConfig"]


class MemorySnapshotStoreConfig(BaseModel):
    """Configuration of `MemorySnapshotStore` (``memory`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    max_snapshot_bytes: int = Field(DEFAULT_MAX_SNAPSHOT_BYTES, gt=0)


class MemorySnapshotStore(Configurable):
    """In-process snapshot store (the executable specification of the SnapshotStore port)."""

    config_model: ClassVar[type[BaseModel]] = MemorySnapshotStoreConfig
    capabilities = declare()

    def __init__(self, *, max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES) -> None:
        self.max_snapshot_bytes = max_snapshot_bytes
        self._lock = threading.Lock()
        self._stored: dict[str, tuple[int, str]] = {}

    def __repr__(self) -> str:
        return "MemorySnapshotStore()"

    async def save(self, snapshot: Snapshot) -> bool:
        encoded = encode_snapshot(snapshot, self.max_snapshot_bytes)
        with self._lock:
            stored = self._stored.get(encoded.stream)
            if stored is not None and stored[0] > encoded.version:
                return False
            self._stored[encoded.stream] = (encoded.version, encoded.body)
        return True

    async def load(self, stream: str) -> Snapshot | None:
        validate_stream(stream)
        with self._lock:
            stored = self._stored.get(stream)
        return None if stored is None else decode_snapshot(stream, stored[1], "memory")

    async def delete(self, stream: str) -> None:
        validate_stream(stream)
        with self._lock:
            self._stored.pop(stream, None)
