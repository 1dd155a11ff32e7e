"""Pins beyond the basics: promotion, a replacing put, delete, and limits after unpin."""

from __future__ import annotations

import pytest

from portfolio_core.ports.cache_store import CacheStore, CacheTier
from portfolio_core.ports.errors import ConflictError
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.contracts.cache_store._common import (
    PINNING,
    TIERS,
    assert_hot,
    assert_left_hot,
    kv_blocks,
    kv_tokens,
    limited,
    occupied,
    sink,
    tiers_of,
)
from portfolio_core.testing.suite import ContractSuite, Factory


class PinClauses(ContractSuite[CacheStore]):
    """What pins survive, what they promote and when limits catch up with them."""

    @clause("cache_store.pin.promotes", "pin of an entry in a lower tier moves it to hot")
    @requires(PINNING, TIERS)
    def test_pin_promotes(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        for depth, tier in enumerate(tiers_of(adapter)[1:], start=1):
            adapter.put("a", entry)
            sink(adapter, "a", depth)
            adapter.pin("a")
            assert occupied(adapter) == {CacheTier.HOT: 1}, (
                f"pin of the entry in {tier} left it in {occupied(adapter)}"
            )
            assert adapter.stats().promotions == depth, "a promoting pin was not counted"
            with pytest.raises(ConflictError):
                adapter.evict("a")
            assert adapter.unpin("a") is True
        adapter.put("a", entry)
        adapter.pin("a")
        assert adapter.stats().promotions == len(tiers_of(adapter)) - 1, (
            "pin of a hot entry counted a promotion"
        )

    @clause("cache_store.pin.kept_by_put", "a replacing put keeps the agent's pins")
    @requires(PINNING)
    def test_pin_kept_by_put(self, adapter: CacheStore) -> None:
        adapter.put("a", kv_blocks("a", kv_tokens(1, 40), seed=1))
        adapter.pin("a")
        adapter.put("a", kv_blocks("a", kv_tokens(1, 40), seed=2))
        with pytest.raises(ConflictError):
            adapter.evict("a")
        assert adapter.unpin("a") is True, "the pin did not survive the replacing put"

    @clause("cache_store.delete.pins", "delete removes the entry's pins with it")
    @requires(PINNING)
    def test_delete_removes_pins(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        adapter.pin("a")
        adapter.pin("a")
        assert adapter.delete("a") is True
        assert adapter.unpin("a") is False, "a deleted entry kept its pin"
        adapter.put("a", entry)
        assert adapter.evict("a") is True, "a new entry inherited a deleted entry's pin"

    @clause(
        "cache_store.pin.unpin_restores_limits",
        "a pinned entry over the limits stays; the unpin releasing its last pin restores them",
    )
    @requires(PINNING)
    def test_unpin_restores_limits(self, make_adapter: Factory) -> None:
        small = kv_blocks("a", kv_tokens(1, 16))
        big = kv_blocks("a", kv_tokens(1, 48))
        with limited(make_adapter, max_bytes=small.nbytes) as store:
            store.put("a", small)
            store.pin("a")
            store.pin("a")
            store.put("a", big)  # over max_bytes, but pinned
            assert store.stats().bytes.get(CacheTier.HOT) == big.nbytes, (
                "the pinned entry over the byte limit left the hot tier"
            )
            assert store.unpin("a") is True
            assert_hot(store, "a", big, "the entry still pinned once")
            assert store.unpin("a") is True
            assert_left_hot(store, "a", big, "the unpinned entry over the byte limit")
