"""The memory EventStore passes the EventStore contract suite."""

from __future__ import annotations

import pytest

from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.testing.contracts.event_store import EventStoreContract


class TestMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def make_adapter(self) -> type[MemoryEventStore]:
        return MemoryEventStore
