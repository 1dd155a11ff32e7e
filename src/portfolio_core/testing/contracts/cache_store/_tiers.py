"""Tiers: which a store has, how evict walks an entry down them, and what each gives back."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence

import pytest

from portfolio_core.ports.cache_store import CacheStore, CacheTier
from portfolio_core.ports.capabilities import supports
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.contracts.cache_store._common import (
    TIERS,
    covers,
    expected_match,
    kv_blocks,
    kv_tokens,
    occupied,
    sink,
    tiers_of,
)
from portfolio_core.testing.suite import ContractSuite


def _numpy_int64(tokens: Sequence[int]) -> Sequence[int]:
    np = pytest.importorskip("numpy")
    return np.asarray(list(tokens), dtype=np.int64)  # type: ignore[no-any-return]


def _numpy_int32(tokens: Sequence[int]) -> Sequence[int]:
    np = pytest.importorskip("numpy")
    return np.asarray(list(tokens), dtype=np.int32)  # type: ignore[no-any-return]


#: the sequence types a query may come in (name, conversion)
QUERY_TYPES: tuple[tuple[str, Callable[[Sequence[int]], Sequence[int]]], ...] = (
    ("list", list),
    ("tuple", tuple),
    ("array('q')", lambda tokens: array("q", tokens)),
    ("numpy int64", _numpy_int64),
    ("numpy int32", _numpy_int32),
)


class TierClauses(ContractSuite[CacheStore]):
    """The tiers a store lists, evict's walk down them, matching and values in each."""

    @clause(
        "cache_store.stats.tiers",
        "stats lists every tier the store has (hot always), 0 when empty; TIERS is declared "
        "exactly when there is a tier below hot",
    )
    def test_tiers_listed(self, adapter: CacheStore) -> None:
        stats = adapter.stats()
        assert CacheTier.HOT in stats.entries, "stats.entries has no hot tier"
        assert set(stats.bytes) == set(stats.entries), (
            f"entries list tiers {sorted(stats.entries)}, bytes {sorted(stats.bytes)}"
        )
        assert not any(stats.entries.values()), f"an empty store counts {dict(stats.entries)}"
        assert not any(stats.bytes.values()), f"an empty store counts bytes {dict(stats.bytes)}"
        tiers = tiers_of(adapter)
        assert supports(adapter, TIERS) is (len(tiers) > 1), (
            f"the store lists tiers {[str(t) for t in tiers]} but "
            f"{'declares' if supports(adapter, TIERS) else 'does not declare'} TIERS"
        )

    @clause(
        "cache_store.evict.descends",
        "each evict moves the entry one tier down, in the order hot, warm, cold, and drops it "
        "from the last; each move counts one eviction",
    )
    def test_evict_descends(self, adapter: CacheStore) -> None:
        tiers = tiers_of(adapter)
        entry = kv_blocks("a", kv_tokens(1, 40))
        adapter.put("a", entry)
        for step, tier in enumerate(tiers):
            where = occupied(adapter)
            assert where == {tier: 1}, f"after {step} evicts the entry is in {where}, want {tier}"
            stats = adapter.stats()
            empty = {t: b for t, b in stats.bytes.items() if b and t is not tier}
            assert not empty, f"tiers without entries count bytes: {empty}"
            if tier is CacheTier.HOT:
                assert stats.bytes.get(tier) == entry.nbytes, (
                    f"the hot tier counts {stats.bytes.get(tier)} bytes, the entry has "
                    f"{entry.nbytes}"
                )
            assert adapter.evict("a") is True, f"evict of the entry in {tier} returned False"
            assert adapter.stats().evictions == step + 1, (
                f"{step + 1} evicts counted as {adapter.stats().evictions} evictions"
            )
        stats = adapter.stats()
        assert not any(stats.entries.values()), f"evicted from the last tier, still {stats}"
        assert not any(stats.bytes.values()), f"evicted from the last tier, bytes {stats}"
        assert adapter.get("a", entry.tokens) is None, "evicted from the last tier, still found"
        assert adapter.evict("a") is False, "evict of a dropped entry returned True"
        assert adapter.stats().evictions == len(tiers), "evict of an absent agent counted"

    @clause(
        "cache_store.tiers.match",
        "in every tier an entry matches by the port's rule, a miss leaves it where it was, "
        "and a hit gives back its tokens and tensors unchanged, found in that tier",
    )
    def test_every_tier_matches(self, adapter: CacheStore) -> None:
        bs = adapter.block_size
        for depth, tier in enumerate(tiers_of(adapter)):
            agent = f"t{depth}"
            entry = kv_blocks(agent, kv_tokens(1, 4 * bs + 3), seed=depth + 1)
            diverging = [*entry.tokens[: 2 * bs + 3], 999_999, *entry.tokens[2 * bs + 4 :]]
            cases = (
                ("the entry itself", list(entry.tokens), len(entry.tokens)),
                ("a longer query", [*entry.tokens, 5, 6], len(entry.tokens)),
                ("a shorter query", list(entry.tokens[: 3 * bs + 1]), 3 * bs),
                ("a diverging query", diverging, 2 * bs),
            )
            for what, query, want in cases:
                adapter.put(agent, entry)
                sink(adapter, agent, depth)
                miss = adapter.get(agent, [999_999, *entry.tokens[1:]])
                assert miss is None, f"a query diverging at token 0 hit the entry in {tier}"
                assert occupied(adapter) == {tier: 1}, (
                    f"a miss moved the entry from {tier}: now {occupied(adapter)}"
                )
                hit = adapter.get(agent, query)
                assert hit is not None, f"{what} missed the entry in {tier}"
                assert hit.tier is tier, f"the entry in {tier} was reported found in {hit.tier}"
                assert hit.matched_tokens == want, (
                    f"{what} matched {hit.matched_tokens} tokens of the entry in {tier}, "
                    f"want {want}"
                )
                assert hit.exact is (want == len(query)), f"exact is wrong for {what} in {tier}"
                assert covers(hit.blocks, entry, want), f"the entry in {tier} came back changed"
                assert hit.blocks.agent_id == agent, f"the entry in {tier} changed its agent"
                assert occupied(adapter) == {CacheTier.HOT: 1}, (
                    f"a hit in {tier} left the entry in {occupied(adapter)}, not in hot"
                )
            assert adapter.delete(agent) is True

    @clause(
        "cache_store.get.anywhere",
        "in every tier, a long entry matches by the port's rule wherever the query diverges "
        "or ends, and an entry shorter than a block is returned whole",
    )
    def test_match_anywhere(self, adapter: CacheStore) -> None:
        bs = adapter.block_size
        tokens = kv_tokens(1, 40 * bs + 5)
        n = len(tokens)
        at = sorted({0, 1, bs - 1, bs, bs + 1, 7 * bs + 3, 20 * bs, 32 * bs - 1, 39 * bs + 2})
        queries = [
            *(("diverging at", d, [*tokens[:d], 999_999, *tokens[d + 1 :]]) for d in at),
            *(("ending at", d, list(tokens[:d])) for d in (*at[1:], 40 * bs, 40 * bs + 2)),
            ("diverging at", n - 1, [*tokens[:-1], 999_999]),
        ]
        short = kv_blocks("s", kv_tokens(2, 1))
        for depth, tier in enumerate(tiers_of(adapter)):
            for what, where, query in queries:
                entry = kv_blocks("a", tokens)
                adapter.put("a", entry)
                sink(adapter, "a", depth)
                want = expected_match(tokens, query, bs)
                hit = adapter.get("a", query)
                if want == 0:
                    assert hit is None, f"a query {what} token {where} hit the entry in {tier}"
                    continue
                assert hit is not None, f"a query {what} token {where} missed in {tier}"
                assert hit.matched_tokens == want, (
                    f"a query {what} token {where} matched {hit.matched_tokens} tokens of the "
                    f"entry in {tier}, want {want}"
                )
                assert covers(hit.blocks, entry, want), f"wrong tensors from {tier}"
            for query in (list(short.tokens), [*short.tokens, 3, 4]):
                adapter.put("s", short)
                sink(adapter, "s", depth)
                hit = adapter.get("s", query)
                assert hit is not None, f"a one-token entry in {tier} missed"
                assert (hit.matched_tokens, hit.exact) == (1, len(query) == 1), (
                    f"a one-token entry in {tier} matched {hit.matched_tokens} tokens "
                    f"(exact {hit.exact}) of {len(query)}"
                )

    @clause(
        "cache_store.get.negative",
        "tokens are compared as signed integers: negative ids match, as a list or NumPy int64",
    )
    def test_negative_tokens(self, adapter: CacheStore) -> None:
        np = pytest.importorskip("numpy")
        bs = adapter.block_size
        entry = kv_blocks("a", [-1 - p for p in range(3 * bs + 2)])
        longer = [*entry.tokens, 5]
        diverging = [*entry.tokens[: bs + 1], 7, *entry.tokens[bs + 2 :]]
        for tier in tiers_of(adapter)[:2]:
            depth = 0 if tier is CacheTier.HOT else 1
            for query, want in (
                (longer, len(entry.tokens)),
                (np.asarray(longer, dtype=np.int64), len(entry.tokens)),
                (diverging, bs),
                (np.asarray(diverging, dtype=np.int64), bs),
                ([-p for p in range(len(longer))], 0),  # -0 == 0 is not -1: a miss
            ):
                adapter.put("a", entry)
                sink(adapter, "a", depth)
                hit = adapter.get("a", query)
                got = 0 if hit is None else hit.matched_tokens
                assert got == want, (
                    f"negative tokens as {type(query).__name__} matched {got} of the entry in "
                    f"{tier}, want {want}"
                )

    @clause(
        "cache_store.get.sequence_types",
        "a query matches by its values whatever sequence type it comes in (list, tuple, "
        "range, array('q'), NumPy int64 or int32), in every tier",
    )
    def test_sequence_types(self, adapter: CacheStore) -> None:
        bs = adapter.block_size
        tokens = tuple(range(1000, 1000 + 4 * bs + 3))
        diverging = [*tokens[: 2 * bs + 3], 7, *tokens[2 * bs + 4 :]]
        cases: list[tuple[str, Sequence[int], int]] = [
            ("a longer range", range(1000, 1000 + len(tokens) + 4), len(tokens)),
            ("a shorter range", range(1000, 1000 + 3 * bs + 1), 3 * bs),
            ("a range diverging at token 0", range(999, 999 + len(tokens)), 0),
        ]
        for name, convert in QUERY_TYPES:
            cases.append((f"the entry as {name}", convert(tokens), len(tokens)))
            cases.append((f"a longer {name}", convert([*tokens, 1, 2]), len(tokens)))
            cases.append((f"a shorter {name}", convert(tokens[: 3 * bs + 1]), 3 * bs))
            cases.append((f"a diverging {name}", convert(diverging), 2 * bs))
        for tier in tiers_of(adapter)[:2]:
            depth = 0 if tier is CacheTier.HOT else 1
            for what, query, want in cases:
                entry = kv_blocks("a", tokens)
                adapter.put("a", entry)
                sink(adapter, "a", depth)
                hit = adapter.get("a", query)
                if want == 0:
                    assert hit is None, f"{what} hit the entry in {tier}"
                    continue
                assert hit is not None, f"{what} missed the entry in {tier}"
                assert hit.matched_tokens == want, (
                    f"{what} matched {hit.matched_tokens} tokens in {tier}, want {want}"
                )
                assert hit.exact is (want == len(query)), f"exact is wrong for {what} in {tier}"
                assert covers(hit.blocks, entry, want), f"{what} got other tensors in {tier}"

    @clause(
        "cache_store.put.from_lower_tier",
        "put of an agent whose entry is in a lower tier replaces it there: one entry, in hot",
    )
    @requires(TIERS)
    def test_put_from_lower_tier(self, adapter: CacheStore) -> None:
        for depth in range(1, len(tiers_of(adapter))):
            first = kv_blocks("a", kv_tokens(1, 40), seed=1)
            second = kv_blocks("a", kv_tokens(1, 40), seed=2)
            adapter.put("a", first)
            sink(adapter, "a", depth)
            adapter.put("a", second)
            assert occupied(adapter) == {CacheTier.HOT: 1}, (
                f"after put the agent's entries are {occupied(adapter)}"
            )
            hit = adapter.get("a", second.tokens)
            assert hit is not None, "the replacing entry is not found"
            assert hit.tier is CacheTier.HOT, f"the replacing entry was found in {hit.tier}"
            assert covers(hit.blocks, second, 40), "the lower tier's old entry came back"
            assert adapter.delete("a") is True
