"""Contract suite of the CacheStore port (sync), with a state machine over a pure model.

Blocks are built with NumPy (the ``llm`` extra); the suite is skipped without it.

The factory: called with no arguments it returns a fresh, empty, unlimited store. Clauses
about limits call it with ``max_entries=`` or ``max_bytes=`` (limits of the **hot** tier) and
are skipped when the factory does not name those keywords; the state machine also passes
``block_size=`` when the factory accepts it. A store declaring ``cache_store.tiers`` must
have at least one tier below hot able to hold a handful of entries (the suite stores fewer
than ten), and the tier right below hot must hold at least one.

The clauses on tiers are in ``_tiers``, on the counters of stats in ``_counters``, on pins
beyond the basics in ``_pins``; the shared pieces (blocks, the matching rule, stores with
limits) are in ``_common``, the state machine in ``_model``. Import from this package, not
from those private modules.
"""

from __future__ import annotations

import contextlib

import pytest

from portfolio_core.ports.cache_store import CacheHit, CacheStore, CacheStoreCapability, CacheTier
from portfolio_core.ports.errors import ConflictError, InvalidInputError, NotFoundError
from portfolio_core.testing.clauses import clause, expect_unsupported, requires, requires_absent
from portfolio_core.testing.contracts.cache_store._common import (
    PINNING,
    TIERS,
    assert_hot,
    assert_left_hot,
    covers,
    expected_match,
    kv_blocks,
    kv_tokens,
    limited,
)
from portfolio_core.testing.contracts.cache_store._counters import CounterClauses
from portfolio_core.testing.contracts.cache_store._model import CacheStoreMachine
from portfolio_core.testing.contracts.cache_store._pins import PinClauses
from portfolio_core.testing.contracts.cache_store._tiers import TierClauses
from portfolio_core.testing.loop import accepts_keyword
from portfolio_core.testing.machines import run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = [
    "CacheStoreContract",
    "CacheStoreMachine",
    "covers",
    "expected_match",
    "kv_blocks",
    "kv_tokens",
]


class CacheStoreContract(TierClauses, CounterClauses, PinClauses, ContractSuite[CacheStore]):
    """The promises of [CacheStore][portfolio_core.ports.CacheStore] (docs/ports/cache_store.md)."""

    port_key = "cache_store"
    capability_names = frozenset(c.value for c in CacheStoreCapability)

    def put_probe(self, adapter: CacheStore) -> str:
        adapter.put("kit-probe", kv_blocks("kit-probe", kv_tokens(0, 20)))
        return "kit-probe"

    def has_probe(self, adapter: CacheStore, probe: str) -> bool:
        return adapter.get(probe, kv_tokens(0, 20)) is not None

    # -- matching ------------------------------------------------------------------------

    @clause("cache_store.get.exact", "an entry equal to the query is returned whole, exact")
    def test_exact(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 3 * adapter.block_size + 5))
        adapter.put("a", entry)
        hit = adapter.get("a", list(entry.tokens))
        assert hit is not None, "get of the stored tokens missed"
        assert isinstance(hit, CacheHit)
        assert hit.matched_tokens == len(entry.tokens), f"matched {hit.matched_tokens}"
        assert hit.exact, "an equal query is an exact hit"
        assert covers(hit.blocks, entry, len(entry.tokens)), "the returned blocks differ"

    @clause(
        "cache_store.get.shorter_prefix",
        "an entry that is a prefix of the query is returned whole, not exact",
    )
    def test_shorter_prefix(self, adapter: CacheStore) -> None:
        bs = adapter.block_size
        entry = kv_blocks("a", kv_tokens(1, 2 * bs + 3))  # ends inside a block: still whole
        adapter.put("a", entry)
        query = [*entry.tokens, 7, 8, 9]
        hit = adapter.get("a", query)
        assert hit is not None, "a query extending the entry missed"
        assert hit.matched_tokens == len(entry.tokens), (
            f"matched {hit.matched_tokens} tokens, the entry has {len(entry.tokens)}"
        )
        assert not hit.exact, "a hit covering part of the query is not exact"
        assert covers(hit.blocks, entry, len(entry.tokens))

    @clause(
        "cache_store.get.longer_trimmed",
        "a longer entry is trimmed to the query rounded down to whole blocks",
    )
    @pytest.mark.parametrize("extra", [0, 1, 5])
    def test_longer_trimmed(self, adapter: CacheStore, extra: int) -> None:
        bs = adapter.block_size
        entry = kv_blocks("a", kv_tokens(1, 5 * bs))
        adapter.put("a", entry)
        n = 3 * bs + extra
        hit = adapter.get("a", entry.tokens[:n])
        want = (n // bs) * bs
        assert hit is not None, "a query that is a prefix of the entry missed"
        assert hit.matched_tokens == want, f"matched {hit.matched_tokens}, want {want}"
        assert len(hit.blocks.tokens) == want, (
            f"the hit's blocks cover {len(hit.blocks.tokens)} tokens, want {want}"
        )
        assert covers(hit.blocks, entry, want), "trimmed blocks are not the entry's prefix"
        assert hit.exact is (want == n)
        again = adapter.get("a", entry.tokens)
        assert again is not None, "trimming for a hit dropped the stored entry"
        assert again.matched_tokens == len(entry.tokens), "trimming changed the stored entry"

    @clause(
        "cache_store.get.diverging",
        "an entry diverging from the query matches its common prefix rounded down to blocks",
    )
    @pytest.mark.parametrize(("at_block", "offset"), [(2, 0), (2, 3), (0, 5)])
    def test_diverging(self, adapter: CacheStore, at_block: int, offset: int) -> None:
        bs = adapter.block_size
        entry = kv_blocks("a", kv_tokens(1, 4 * bs))
        adapter.put("a", entry)
        d = at_block * bs + offset
        query = [*entry.tokens[:d], 999_999, *entry.tokens[d + 1 :]]
        hit = adapter.get("a", query)
        want = at_block * bs
        if want == 0:
            assert hit is None, "a divergence inside the first block must miss"
            return
        assert hit is not None, f"a query sharing {d} tokens missed"
        assert hit.matched_tokens == want, f"matched {hit.matched_tokens}, want {want}"
        assert covers(hit.blocks, entry, want)
        assert not hit.exact

    @clause("cache_store.get.isolated", "an agent never gets another agent's entry")
    def test_isolated(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        assert adapter.get("b", entry.tokens) is None
        assert adapter.get("a", []) is None, "an empty query must miss"

    # -- put / delete / evict ------------------------------------------------------------

    @clause("cache_store.put.replaces", "put replaces the agent's entry")
    def test_put_replaces(self, adapter: CacheStore) -> None:
        adapter.put("a", kv_blocks("a", kv_tokens(1, 40), seed=1))
        second = kv_blocks("a", kv_tokens(2, 40), seed=2)
        adapter.put("a", second)
        hit = adapter.get("a", second.tokens)
        assert hit is not None, "the new entry is not found"
        assert hit.exact, "the new entry is not an exact hit"
        assert covers(hit.blocks, second, 40), "get returned the replaced entry"
        first_only = adapter.get("a", kv_tokens(1, 40))
        assert first_only is None or first_only.matched_tokens <= 16, "the old entry survived"

    @clause(
        "cache_store.put.invalid",
        "put of bad input raises InvalidInputError and stores nothing",
    )
    def test_put_invalid(self, adapter: CacheStore) -> None:
        tokens = kv_tokens(1, 20)
        with pytest.raises(InvalidInputError):
            adapter.put("", kv_blocks("", tokens))
        with pytest.raises(InvalidInputError):
            adapter.put("a", kv_blocks("b", tokens))
        with pytest.raises(InvalidInputError):
            adapter.put("a", kv_blocks("a", ()))
        assert adapter.get("a", tokens) is None, "refused blocks were stored"
        assert adapter.get("b", tokens) is None, "refused blocks were stored"

    @clause("cache_store.delete", "delete returns whether the entry existed and removes it")
    def test_delete(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        assert adapter.delete("a") is True
        assert adapter.delete("a") is False
        assert adapter.get("a", entry.tokens) is None
        assert adapter.evict("a") is False, "evict of a deleted agent reported it present"

    @clause("cache_store.evict.absent", "evict of an unknown agent returns False")
    def test_evict_absent(self, adapter: CacheStore) -> None:
        assert adapter.evict("nobody") is False

    @clause("cache_store.evict.drops", "without tiers, an evicted entry is gone")
    @requires_absent(TIERS)
    def test_evict_drops(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        assert adapter.evict("a") is True
        assert adapter.get("a", entry.tokens) is None

    @clause("cache_store.evict.moves_down", "with tiers, an evicted entry moves to a lower tier")
    @requires(TIERS)
    def test_evict_moves_down(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        assert adapter.evict("a") is True
        assert adapter.stats().entries.get(CacheTier.HOT, 0) == 0, "still counted as hot"
        hit = adapter.get("a", entry.tokens)
        assert hit is not None, "the evicted entry was dropped, not moved down"
        assert hit.tier is not CacheTier.HOT, f"found in {hit.tier} right after evict"
        assert covers(hit.blocks, entry, 40), "the lower tier changed the tensors"

    @clause("cache_store.hit.promotes", "a hit in a lower tier moves the entry back to hot")
    @requires(TIERS)
    def test_hit_promotes(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        adapter.evict("a")
        first = adapter.get("a", entry.tokens)
        second = adapter.get("a", entry.tokens)
        assert first is not None, "the evicted entry was lost"
        assert second is not None, "the promoted entry was lost"
        assert second.tier is CacheTier.HOT, f"a second hit found it in {second.tier}"
        assert adapter.stats().entries.get(CacheTier.HOT) == 1

    @clause("cache_store.delete.everywhere", "delete removes the entry from every tier")
    @requires(TIERS)
    def test_delete_everywhere(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        adapter.evict("a")
        assert adapter.delete("a") is True, "delete of an entry in a lower tier returned False"
        assert adapter.get("a", entry.tokens) is None, "a lower tier kept a copy"
        assert sum(adapter.stats().entries.values()) == 0, "a tier still counts the entry"

    # -- limits --------------------------------------------------------------------------

    @clause(
        "cache_store.lru.entries",
        "over max_entries, the least recently used entry leaves the hot tier",
    )
    def test_lru_entries(self, make_adapter: Factory) -> None:
        with limited(make_adapter, max_entries=2) as store:
            entries = {a: kv_blocks(a, kv_tokens(i + 1, 40)) for i, a in enumerate("abc")}
            store.put("a", entries["a"])
            store.put("b", entries["b"])
            assert store.get("a", entries["a"].tokens) is not None  # a is now the newest
            store.put("c", entries["c"])
            assert_hot(store, "a", entries["a"], "the recently used entry")
            assert_hot(store, "c", entries["c"], "the newest entry")
            assert_left_hot(store, "b", entries["b"], "the least recently used entry")

    @clause("cache_store.lru.bytes", "over max_bytes, least recently used entries leave hot")
    def test_lru_bytes(self, make_adapter: Factory) -> None:
        entries = {a: kv_blocks(a, kv_tokens(i + 1, 40)) for i, a in enumerate("abc")}
        size = entries["a"].nbytes
        with limited(make_adapter, max_bytes=2 * size + size // 2) as store:
            for a in "abc":
                store.put(a, entries[a])
            stats = store.stats()
            assert stats.bytes.get(CacheTier.HOT, 0) <= 2 * size + size // 2, (
                f"hot tier holds {stats.bytes.get(CacheTier.HOT)} bytes over its limit"
            )
            assert stats.entries.get(CacheTier.HOT) == 2
            assert_left_hot(store, "a", entries["a"], "the oldest entry")
            assert_hot(store, "c", entries["c"], "the newest entry")

    # -- pinning -------------------------------------------------------------------------

    @clause("cache_store.pin.protects", "a pinned entry is never evicted to honour limits")
    @requires(PINNING)
    def test_pin_protects(self, make_adapter: Factory) -> None:
        with limited(make_adapter, max_entries=1) as store:
            a, b = kv_blocks("a", kv_tokens(1, 40)), kv_blocks("b", kv_tokens(2, 40))
            store.put("a", a)
            store.pin("a")
            store.put("b", b)
            assert_hot(store, "a", a, "the pinned entry")
            assert_left_hot(store, "b", b, "the unpinned newer entry")
            assert store.unpin("a") is True
            assert store.unpin("a") is False, "unpin released a pin that was not there"
            store.put("b", b)
            assert_left_hot(store, "a", a, "the unpinned older entry")

    @clause("cache_store.pin.evict_refused", "evict of a pinned entry raises ConflictError")
    @requires(PINNING)
    def test_pin_evict_refused(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        adapter.pin("a")
        adapter.pin("a")
        with pytest.raises(ConflictError):
            adapter.evict("a")
        adapter.unpin("a")
        with pytest.raises(ConflictError):
            adapter.evict("a")  # pins are counted: one is still held
        adapter.unpin("a")
        assert adapter.evict("a") is True
        hit = adapter.get("a", entry.tokens)
        assert hit is None or hit.tier is not CacheTier.HOT

    @clause("cache_store.pin.missing", "pin of an unknown agent raises NotFoundError")
    @requires(PINNING)
    def test_pin_missing(self, adapter: CacheStore) -> None:
        with pytest.raises(NotFoundError):
            adapter.pin("nobody")
        assert adapter.unpin("nobody") is False

    @clause("cache_store.pin.unsupported", "without pinning, pin raises UnsupportedError")
    @requires_absent(PINNING)
    def test_pin_unsupported(self, adapter: CacheStore) -> None:
        adapter.put("a", kv_blocks("a", kv_tokens(1, 40)))
        with expect_unsupported(PINNING):
            adapter.pin("a")

    # -- stats ---------------------------------------------------------------------------

    @clause("cache_store.stats", "stats counts hits and misses and the hot tier's entries/bytes")
    def test_stats(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        adapter.get("a", entry.tokens)
        adapter.get("a", [999_999] * 40)
        adapter.get("b", entry.tokens)
        stats = adapter.stats()
        assert (stats.hits, stats.misses) == (1, 2), f"hits/misses {stats.hits}/{stats.misses}"
        assert abs(stats.hit_rate - 1 / 3) < 1e-9
        assert stats.entries.get(CacheTier.HOT) == 1
        assert stats.bytes.get(CacheTier.HOT) == entry.nbytes

    @clause(
        "cache_store.snapshots",
        "stats is the caller's own: changing its mappings changes nothing the store reports "
        "later, and the store's later calls do not change a stats already returned",
    )
    def test_stats_are_snapshots(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        adapter.get("a", entry.tokens)
        stats = adapter.stats()
        for mapping in (stats.entries, stats.bytes, stats.hits_by_tier):
            with contextlib.suppress(TypeError):  # a read-only mapping is a copy too
                mapping[CacheTier.HOT] = 999  # type: ignore[index]
        again = adapter.stats()
        assert again.entries.get(CacheTier.HOT) == 1, "changing a stats changed the store's"
        assert again.bytes.get(CacheTier.HOT) == entry.nbytes, "changing a stats changed bytes"
        assert again.hits_by_tier.get(CacheTier.HOT, 0) == 1, "changing a stats changed hits"
        before = adapter.stats()
        adapter.put("b", kv_blocks("b", kv_tokens(2, 40)))
        adapter.get("b", [999_999] * 40)
        after = adapter.stats()
        assert (after.entries.get(CacheTier.HOT), after.misses) == (2, 1), after
        assert before.entries.get(CacheTier.HOT) == 1, "later calls changed a returned stats"
        assert before.bytes.get(CacheTier.HOT) == entry.nbytes, (
            "later calls changed a returned stats"
        )
        assert before.misses == 0, "a later miss changed a returned stats"

    @clause("cache_store.model", "any sequence of operations behaves like the reference model")
    def test_state_machine(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        pytest.importorskip("numpy")
        if not accepts_keyword(make_adapter, "max_entries"):
            pytest.skip("the factory does not accept max_entries=")
        run_machine(CacheStoreMachine, make_adapter, kit_settings)
