"""The memory ConfigStore passes the ConfigStore contract suite."""

from __future__ import annotations

import pytest

from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.testing.contracts.config_store import ConfigStoreContract


class TestMemoryConfigStore(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(self) -> type[MemoryConfigStore]:
        return MemoryConfigStore
