"""The memory CacheStore beyond the kit: tiers in detail, adoption, wiring by manifest."""
# ruff: noqa: E402  (imports after importorskip: skipped without the llm extra)

from __future__ import annotations

import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")

from portfolio_core.adapters.file.cache_persistence import SafetensorsCachePersistence
from portfolio_core.adapters.memory.cache_store import MemoryCacheStore
from portfolio_core.manifest import load
from portfolio_core.ports import CachePersistence, CacheStore, CacheTier
from portfolio_core.testing.contracts.cache_store import expected_match, kv_blocks, kv_tokens


def test_three_tiers_move_down_one_at_a_time(tmp_path: Path) -> None:
    cold = SafetensorsCachePersistence(tmp_path, fsync=False)
    store = MemoryCacheStore(max_entries=1, warm=True, warm_max_entries=1, persistence=cold)
    for i, agent in enumerate("abc"):
        store.put(agent, kv_blocks(agent, kv_tokens(i + 1, 40), i))
    assert [store.tier_of(a) for a in "abc"] == [CacheTier.COLD, CacheTier.WARM, CacheTier.HOT]
    assert cold.list_cached_agents() == ["a"]
    hit = store.get("a", kv_tokens(1, 40))
    assert hit is not None
    assert hit.tier is CacheTier.COLD
    assert store.tier_of("a") is CacheTier.HOT
    assert cold.list_cached_agents() == ["b"], "a hit moves the entry up, out of the file"
    stats = store.stats()
    assert stats.entries == {CacheTier.HOT: 1, CacheTier.WARM: 1, CacheTier.COLD: 1}
    assert stats.hits_by_tier[CacheTier.COLD] == 1
    assert stats.promotions == 1
    assert store.delete("b")
    assert cold.list_cached_agents() == []


def test_warm_bytes_are_the_compressed_size() -> None:
    store = MemoryCacheStore(warm=True)
    blocks = kv_blocks("a", kv_tokens(1, 64))
    store.put("a", blocks)
    store.evict("a")
    warm = store.stats().bytes[CacheTier.WARM]
    assert 0 < warm < blocks.nbytes


def test_adopts_files_of_the_configured_model_and_refuses_others(tmp_path: Path) -> None:
    files = SafetensorsCachePersistence(tmp_path, fsync=False)
    files.save("mine", kv_blocks("mine", kv_tokens(1, 40)))
    foreign = kv_blocks("theirs", kv_tokens(1, 40))
    files.save("theirs", type(foreign)("theirs", foreign.tokens, foreign.keys, foreign.values, "x"))
    store = MemoryCacheStore(persistence=files, spec_hash="kit-store-spec")
    assert store.get("mine", kv_tokens(1, 40)) is not None
    assert store.get("theirs", kv_tokens(1, 40)) is None, "another model's cache was used"
    assert files.exists("theirs"), "a refused file is left alone"


def test_every_tier_can_be_zero_sized() -> None:
    store = MemoryCacheStore(max_entries=0, warm=True, warm_max_entries=0)
    store.put("a", kv_blocks("a", kv_tokens(1, 40)))
    assert store.tier_of("a") is None
    assert store.stats().evictions == 2


def test_threads_share_one_store() -> None:
    store = MemoryCacheStore(max_entries=3, warm=True, warm_max_entries=3)
    agents = [f"agent-{i}" for i in range(8)]
    errors: list[BaseException] = []

    def work(agent: str, seed: int) -> None:
        try:
            for round_ in range(20):
                store.put(agent, kv_blocks(agent, kv_tokens(seed, 16 + round_)))
                store.get(agent, kv_tokens(seed, 40))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a, i % 3 + 1)) for i, a in enumerate(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    stats = store.stats()
    assert stats.entries[CacheTier.HOT] <= 3
    assert stats.entries[CacheTier.WARM] <= 3


def test_registered_and_wired_by_manifest(tmp_path: Path) -> None:
    names = {ep.name for ep in entry_points(group="portfolio_core.adapters.cache_store")}
    assert "memory" in names
    names = {ep.name for ep in entry_points(group="portfolio_core.adapters.cache_persistence")}
    assert "file" in names
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        f"""
schema_version: 1
adapters:
  kv_files:
    port: cache_persistence
    adapter: file
    config: {{ directory: "{tmp_path / "kv"}", fsync: false }}
  kv:
    port: cache_store
    adapter: memory
    config: {{ max_entries: 1, warm: true, warm_max_entries: 0 }}
    uses: {{ persistence: kv_files }}
"""
    )
    wiring = load(manifest)
    store = wiring.entries["kv"].instance
    files = wiring.entries["kv_files"].instance
    assert isinstance(store, CacheStore)
    assert isinstance(files, CachePersistence)
    store.put("a", kv_blocks("a", kv_tokens(1, 40)))
    store.put("b", kv_blocks("b", kv_tokens(2, 40)))
    assert files.list_cached_agents() == ["a"]


def test_a_miss_in_a_lower_tier_decodes_and_loads_nothing(tmp_path: Path) -> None:
    loads: list[str] = []

    class Counting(SafetensorsCachePersistence):
        def load(self, agent_id: str, spec_hash: str) -> Any:
            loads.append(agent_id)
            return super().load(agent_id, spec_hash)

    store = MemoryCacheStore(max_entries=0, persistence=Counting(tmp_path, fsync=False))
    store.put("a", kv_blocks("a", kv_tokens(1, 40)))
    assert store.tier_of("a") is CacheTier.COLD
    assert store.get("a", [999_999] * 40) is None
    assert loads == [], "a miss loaded the file"
    assert store.get("a", kv_tokens(1, 40)) is not None
    assert loads == ["a"]


@settings(max_examples=60, deadline=None)
@given(
    stored_len=st.integers(1, 70),
    query_len=st.integers(0, 80),
    change=st.one_of(st.none(), st.integers(0, 79)),
)
def test_an_int64_array_query_matches_like_a_list(
    stored_len: int, query_len: int, change: int | None
) -> None:
    store = MemoryCacheStore(block_size=8)
    entry = kv_blocks("a", kv_tokens(1, stored_len))
    store.put("a", entry)
    query = list(kv_tokens(1, query_len))
    if change is not None and change < query_len:
        query[change] = 123_456_789
    want = store.get("a", query)
    got = store.get("a", np.asarray(query, dtype=np.int64))
    assert (want is None) == (got is None)
    if want is not None and got is not None:
        assert (got.matched_tokens, got.exact, got.tier) == (
            want.matched_tokens,
            want.exact,
            want.tier,
        )
        assert got.blocks.tokens == want.blocks.tokens
    assert store.stats().hits + store.stats().misses == 2


def test_an_array_query_for_a_lower_tier_entry_takes_the_general_path() -> None:
    store = MemoryCacheStore(warm=True)
    store.put("a", kv_blocks("a", kv_tokens(1, 40)))
    store.evict("a")
    hit = store.get("a", np.asarray(kv_tokens(1, 40), dtype=np.int64))
    assert hit is not None
    assert hit.tier is CacheTier.WARM
    assert hit.exact
    hit = store.get("a", np.asarray(kv_tokens(1, 40), dtype=np.int64))
    assert hit is not None
    assert hit.tier is CacheTier.HOT
    assert store.get("a", np.asarray(kv_tokens(1, 40), dtype=np.int32)) is not None  # converted


@st.composite
def entries_and_queries(draw: st.DrawFn) -> tuple[int, list[int], list[int]]:
    """A block size, an entry's tokens and a query sharing some prefix with them.

    The query keeps ``keep`` tokens of the entry (often a block boundary, 0 or all of them),
    then goes on with other tokens (none: it ends there); so it diverges at a boundary or
    inside a block, is shorter, equal, longer or empty. Tokens are small (so that the rest
    may coincide with the entry), up to 2**63 - 1, and in one example of five anything from
    -2**64 to 2**64 (not kept as machine integers).
    """
    bs = draw(st.sampled_from([1, 2, 4, 16]))
    if draw(st.integers(0, 4)) == 0:
        token = st.integers(-(2**64), 2**64 + 1)
    else:
        token = st.integers(0, 3) | st.integers(0, 2**63 - 1)
    stored = draw(st.lists(token, min_size=1, max_size=5 * bs + 3))
    n = len(stored)
    boundaries = sorted({min(k * bs, n) for k in range(n // bs + 2)})
    keep = draw(st.sampled_from(boundaries) | st.integers(0, n))
    rest = draw(st.lists(token, max_size=2 * bs + 2))
    return bs, stored, stored[:keep] + rest


HOW = ["list", "tuple", "int64", "warm"]


def check_lookup(bs: int, stored: list[int], query: list[int], how: str) -> None:
    """``get`` of ``query`` for an entry of ``stored`` agrees with the naive token-by-token
    rule; ``how``: the query as a list, a tuple or an int64 array, or a list for an entry
    in the warm tier."""
    store = MemoryCacheStore(block_size=bs, warm=True)
    store.put("a", kv_blocks("a", stored))
    tokens: Any = query
    if how == "tuple":
        tokens = tuple(query)
    elif how == "int64":
        tokens = np.asarray(query, dtype=np.int64)
    elif how == "warm":
        store.evict("a")
    want = expected_match(stored, query, bs)
    hit = store.get("a", tokens)
    if want == 0:
        assert hit is None
        assert store.stats().misses == 1
        return
    assert hit is not None
    assert hit.matched_tokens == want
    assert hit.exact is (want == len(query))
    assert hit.blocks.tokens == tuple(stored[:want])
    assert hit.blocks.keys[0].shape[1] == want
    assert hit.tier is (CacheTier.WARM if how == "warm" else CacheTier.HOT)


@settings(max_examples=400, deadline=None)
@given(case=entries_and_queries(), how=st.sampled_from(HOW))
def test_lookups_follow_the_port_rule_token_by_token(
    case: tuple[int, list[int], list[int]], how: str
) -> None:
    assume(how != "int64" or all(-(2**63) <= t < 2**63 for t in case[2]))
    check_lookup(*case, how)


ENTRY = [1, 2, 3, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize(
    "query",
    [
        [1, 2, 3, 4, 0, 6, 7, 8, 9],  # diverging at a block boundary
        [1, 2, 3, 4, 5, 6, 0],  # inside a block
        [0, 2, 3, 4, 5, 6, 7, 8, 9],  # at 0
        [1, 2, 3, 4, 5],  # shorter than the entry
        ENTRY,  # equal
        [*ENTRY, 1],  # longer
        [],  # empty
        [1, 2, 3, 4, 5, 6, 7, 8, -9],  # a token not kept as a machine integer
    ],
)
def test_edge_lookups_follow_the_port_rule(query: list[int], how: str) -> None:
    check_lookup(4, ENTRY, query, how)


def test_entries_beyond_int64_match_any_query() -> None:
    store = MemoryCacheStore(block_size=1)
    store.put("a", kv_blocks("a", [1, 2**63, 2**64]))
    hit = store.get("a", np.asarray([1, -1], dtype=np.int64))
    assert hit is not None
    assert hit.matched_tokens == 1
    hit = store.get("a", [1, 2**63, 2**64, 5])
    assert hit is not None
    assert hit.matched_tokens == 3
