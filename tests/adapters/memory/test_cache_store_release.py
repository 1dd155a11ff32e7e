"""The memory CacheStore under memory pressure: ``release`` spills its in-memory tiers down
(to the cold tier when there is one), oldest first, and never moves a pinned entry."""
# ruff: noqa: E402  (imports after importorskip: skipped without the llm extra)

from __future__ import annotations

from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")

from portfolio_core.adapters.file.cache_persistence import SafetensorsCachePersistence
from portfolio_core.adapters.memory.cache_store import MemoryCacheStore
from portfolio_core.ports import CacheTier, ReleaseOrder, Shrinkable
from portfolio_core.testing.contracts.cache_store import covers, kv_blocks, kv_tokens
from portfolio_core.testing.shrinkable import check_shrinkable


def test_is_shrinkable_after_engine_prefix_caches() -> None:
    store = MemoryCacheStore()
    assert isinstance(store, Shrinkable)
    assert store.release_order == ReleaseOrder.KV_TIER
    assert ReleaseOrder.PREFIX_CACHE < store.release_order < ReleaseOrder.CACHE_ENTRIES


def test_release_spills_hot_entries_to_the_cold_tier_oldest_first_never_the_pinned(
    tmp_path: Path,
) -> None:
    cold = SafetensorsCachePersistence(tmp_path, fsync=False)
    store = MemoryCacheStore(persistence=cold)
    entries = {a: kv_blocks(a, kv_tokens(i + 1, 40), i) for i, a in enumerate("pabc")}
    for agent, blocks in entries.items():
        store.put(agent, blocks)
    store.pin("p")  # the oldest entry, but pinned
    each = entries["a"].nbytes
    assert store.resident_bytes() == 4 * each

    freed = store.release(each + 1)  # more than one entry: two go
    assert freed == 2 * each
    assert store.resident_bytes() == 2 * each
    assert {a: store.tier_of(a) for a in "pabc"} == {
        "p": CacheTier.HOT,
        "a": CacheTier.COLD,
        "b": CacheTier.COLD,
        "c": CacheTier.HOT,
    }
    assert cold.list_cached_agents() == ["a", "b"]
    assert store.stats().evictions == 2

    assert store.release(10**9) == each  # everything but the pinned entry
    assert store.tier_of("p") is CacheTier.HOT
    assert store.release(10**9) == 0  # only the pinned entry is left: nothing to give
    for agent, blocks in entries.items():  # nothing was lost: every entry still answers
        hit = store.get(agent, blocks.tokens)
        assert hit is not None
        assert covers(hit.blocks, blocks, len(blocks.tokens))


def test_release_without_a_cold_tier_drops_warm_copies_first_then_compresses_hot_ones() -> None:
    store = MemoryCacheStore(warm=True, max_entries=2)
    entries = {a: kv_blocks(a, kv_tokens(i + 1, 64), i) for i, a in enumerate("abc")}
    for agent, blocks in entries.items():
        store.put(agent, blocks)
    assert store.tier_of("a") is CacheTier.WARM
    warm = store.stats().bytes[CacheTier.WARM]
    assert store.release(1) == warm  # the warm copy is the oldest: dropped (no tier below)
    assert store.tier_of("a") is None
    before = store.resident_bytes()
    freed = store.release(1)
    assert store.tier_of("b") is CacheTier.WARM, "the oldest hot entry became a warm copy"
    assert store.tier_of("c") is CacheTier.HOT
    assert freed == before - store.resident_bytes() > 0


def test_release_without_lower_tiers_drops_the_oldest_unpinned() -> None:
    store = MemoryCacheStore()
    for i, agent in enumerate("abc"):
        store.put(agent, kv_blocks(agent, kv_tokens(i + 1, 40), i))
    store.pin("a")
    assert store.release(1) > 0
    assert store.agents() == ["a", "c"]
    assert store.release(0) == 0
    assert store.agents() == ["a", "c"]


def test_a_failed_spill_keeps_the_entry_where_it_was(tmp_path: Path) -> None:
    class Full(SafetensorsCachePersistence):
        def save(self, agent_id: str, blocks: object) -> None:
            raise OSError("no space left on device")

    store = MemoryCacheStore(persistence=Full(tmp_path, fsync=False))
    blocks = kv_blocks("a", kv_tokens(1, 40))
    store.put("a", blocks)
    with pytest.raises(OSError, match="no space left"):
        store.release(1)
    assert store.tier_of("a") is CacheTier.HOT
    assert store.resident_bytes() == blocks.nbytes


@pytest.mark.parametrize("tiers", ["hot", "warm", "cold"])
def test_keeps_the_shrinkable_contract(tmp_path: Path, tiers: str) -> None:
    cold = SafetensorsCachePersistence(tmp_path, fsync=False) if tiers == "cold" else None
    store = MemoryCacheStore(warm=tiers == "warm", persistence=cold)
    counter = iter(range(10**6))

    def fill() -> None:
        for _ in range(20):
            n = next(counter)
            store.put(f"agent-{n}", kv_blocks(f"agent-{n}", kv_tokens(n % 5 + 1, 48), n))

    check_shrinkable(store, fill)


def test_releasing_everything_without_a_cold_tier_leaves_only_pinned_entries() -> None:
    store = MemoryCacheStore(warm=True)
    for i, agent in enumerate("pabc"):
        store.put(agent, kv_blocks(agent, kv_tokens(i + 1, 64), i))
    store.pin("p")
    pinned = store.resident_bytes() // 4
    store.release(2**62)
    assert store.agents() == ["p"]
    assert store.resident_bytes() == pinned
    assert store.release(2**62) == 0
