"""The memory projection store passes the ProjectionStore contract suite."""

from __future__ import annotations

import pytest

from portfolio_core.adapters.memory.projection_store import MemoryProjectionStore
from portfolio_core.testing.contracts.projection_store import ProjectionStoreContract


class TestMemoryProjectionStore(ProjectionStoreContract):
    @pytest.fixture
    def make_adapter(self) -> type[MemoryProjectionStore]:
        return MemoryProjectionStore
