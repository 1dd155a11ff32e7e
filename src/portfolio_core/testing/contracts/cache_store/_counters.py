"""The counters of stats (hits by tier, evictions, promotions) and what a miss leaves alone."""

from __future__ import annotations

from portfolio_core.ports.cache_store import CacheStore, CacheTier
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.cache_store._common import (
    assert_hot,
    assert_left_hot,
    kv_blocks,
    kv_tokens,
    limited,
    sink,
    tiers_of,
)
from portfolio_core.testing.suite import ContractSuite, Factory


class CounterClauses(ContractSuite[CacheStore]):
    """hits_by_tier, evictions and promotions; a miss changes no tier and no recency."""

    @clause(
        "cache_store.stats.by_tier",
        "hits_by_tier counts each hit in the tier it was found in and sums to hits; "
        "promotions counts every move back to hot; delete and put are not evictions",
    )
    def test_counters(self, adapter: CacheStore) -> None:
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        assert adapter.get("a", entry.tokens) is not None
        stats = adapter.stats()
        assert stats.hits_by_tier.get(CacheTier.HOT) == 1, f"a hot hit counted as {stats}"
        assert (stats.evictions, stats.promotions) == (0, 0), (
            f"a put and a hot hit counted {stats.evictions} evictions, "
            f"{stats.promotions} promotions"
        )
        tiers = tiers_of(adapter)
        for depth, tier in enumerate(tiers[1:], start=1):
            adapter.put("a", entry)
            sink(adapter, "a", depth)
            hit = adapter.get("a", entry.tokens)
            assert hit is not None, f"the entry in {tier} was lost"
            stats = adapter.stats()
            assert stats.hits_by_tier.get(tier) == 1, (
                f"a hit in {tier} counted as {dict(stats.hits_by_tier)}"
            )
            assert stats.promotions == depth, (
                f"{depth} hits in lower tiers counted {stats.promotions} promotions"
            )
        evictions = sum(range(len(tiers)))  # the sinks above: 1 + 2 + ...
        stats = adapter.stats()
        assert stats.evictions == evictions, (
            f"{evictions} moves down counted as {stats.evictions} evictions"
        )
        assert sum(stats.hits_by_tier.values()) == stats.hits == len(tiers), (
            f"{len(tiers)} hits, counted {stats.hits}, by tier {dict(stats.hits_by_tier)}"
        )
        adapter.put("a", kv_blocks("a", kv_tokens(2, 40)))
        assert adapter.delete("a") is True
        after = adapter.stats()
        assert (after.evictions, after.promotions) == (evictions, len(tiers) - 1), (
            f"a replacing put and a delete changed the counters: {after}"
        )

    @clause(
        "cache_store.stats.evictions",
        "an entry the limits move out of hot counts one eviction",
    )
    def test_limit_evictions(self, make_adapter: Factory) -> None:
        with limited(make_adapter, max_entries=1) as store:
            a, b = kv_blocks("a", kv_tokens(1, 40)), kv_blocks("b", kv_tokens(2, 40))
            store.put("a", a)
            store.put("b", b)
            assert store.stats().evictions == 1, (
                f"one entry over the hot limit counted {store.stats().evictions} evictions"
            )
            store.delete("a")
            store.put("b", b)
            assert store.stats().evictions == 1, "a delete or a replacing put was counted"

    @clause(
        "cache_store.miss.keeps_recency",
        "a miss does not make the entry the most recently used",
    )
    def test_miss_keeps_recency(self, make_adapter: Factory) -> None:
        with limited(make_adapter, max_entries=2) as store:
            entries = {x: kv_blocks(x, kv_tokens(i + 1, 40)) for i, x in enumerate("abc")}
            store.put("a", entries["a"])
            store.put("b", entries["b"])
            miss = store.get("a", [999_999, *entries["a"].tokens[1:]])
            assert miss is None, "a query diverging at token 0 hit"
            store.put("c", entries["c"])
            assert_hot(store, "b", entries["b"], "the entry used after the missed one")
            assert_left_hot(store, "a", entries["a"], "the least recently used entry (a miss)")
