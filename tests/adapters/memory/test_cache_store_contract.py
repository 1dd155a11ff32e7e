"""The memory CacheStore passes the CacheStore kit in each of its tier layouts."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("numpy")

from portfolio_core.adapters.file.cache_persistence import SafetensorsCachePersistence
from portfolio_core.adapters.memory.cache_store import MemoryCacheStore
from portfolio_core.testing.contracts.cache_store import CacheStoreContract

Factory = Callable[..., MemoryCacheStore]


class TestHotOnly(CacheStoreContract):
    @pytest.fixture
    def make_adapter(self) -> Factory:
        def make(
            max_entries: int | None = None, max_bytes: int | None = None, block_size: int = 16
        ) -> MemoryCacheStore:
            return MemoryCacheStore(
                max_entries=max_entries, max_bytes=max_bytes, block_size=block_size
            )

        return make


class TestWarm(CacheStoreContract):
    @pytest.fixture
    def make_adapter(self) -> Factory:
        def make(
            max_entries: int | None = None, max_bytes: int | None = None, block_size: int = 16
        ) -> MemoryCacheStore:
            return MemoryCacheStore(
                max_entries=max_entries, max_bytes=max_bytes, block_size=block_size, warm=True
            )

        return make


class TestWarmAndCold(CacheStoreContract):
    """Hot, a one-entry warm tier, and safetensors files below it."""

    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Factory:
        counter = itertools.count()

        def make(
            max_entries: int | None = None, max_bytes: int | None = None, block_size: int = 16
        ) -> MemoryCacheStore:
            persistence = SafetensorsCachePersistence(tmp_path / f"s{next(counter)}", fsync=False)
            return MemoryCacheStore(
                max_entries=max_entries,
                max_bytes=max_bytes,
                block_size=block_size,
                warm=True,
                warm_max_entries=1,
                persistence=persistence,
            )

        return make


class TestColdOnly(CacheStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Factory:
        counter = itertools.count()

        def make(
            max_entries: int | None = None, max_bytes: int | None = None, block_size: int = 16
        ) -> MemoryCacheStore:
            persistence = SafetensorsCachePersistence(tmp_path / f"s{next(counter)}", fsync=False)
            return MemoryCacheStore(
                max_entries=max_entries,
                max_bytes=max_bytes,
                block_size=block_size,
                persistence=persistence,
            )

        return make
