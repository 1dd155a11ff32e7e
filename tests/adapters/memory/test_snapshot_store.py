"""The memory snapshot store passes the SnapshotStore contract suite."""

from __future__ import annotations

import pytest

from portfolio_core.adapters.memory.snapshot_store import MemorySnapshotStore
from portfolio_core.testing.contracts.snapshot_store import SnapshotStoreContract


class TestMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def make_adapter(self) -> type[MemorySnapshotStore]:
        return MemorySnapshotStore
