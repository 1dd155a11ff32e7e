"""What every CacheStore clause uses: blocks that encode their origin, the matching rule
written independently of any adapter, and stores made with limits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from portfolio_core.ports.cache_store import CacheStore, CacheStoreCapability, CacheTier
from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.model_backend import AgentBlocks
from portfolio_core.testing.loop import accepts_keyword
from portfolio_core.testing.suite import Factory

SPEC = "kit-store-spec"
TIERS = CacheStoreCapability.TIERS
PINNING = CacheStoreCapability.PINNING


def kv_tokens(seed: int, length: int) -> tuple[int, ...]:
    """Tokens shared by every seed for the first ``8 * seed`` positions, then seed-specific."""
    split = 8 * seed
    return tuple(p % 50 if p < split else 1000 * (seed + 1) + p for p in range(length))


def kv_blocks(agent_id: str, tokens: Sequence[int], seed: int = 0, layers: int = 2) -> AgentBlocks:
    """Blocks whose tensor value at position ``p`` of layer ``i`` encodes (seed, i, p)."""
    np = pytest.importorskip("numpy")
    n = len(tokens)
    pos = np.arange(n, dtype=np.float32).reshape(1, n, 1)
    keys = tuple(
        np.broadcast_to(pos + 10_000 * seed + 100_000 * i, (1, n, 2)).copy() for i in range(layers)
    )
    values = tuple(-k for k in keys)
    return AgentBlocks(agent_id, tuple(tokens), keys, values, SPEC)


def covers(hit_blocks: AgentBlocks, entry: AgentBlocks, n: int) -> bool:
    """Whether ``hit_blocks`` is exactly ``entry`` cut to its first ``n`` tokens."""
    np = pytest.importorskip("numpy")
    if hit_blocks.tokens != entry.tokens[:n] or hit_blocks.spec_hash != entry.spec_hash:
        return False
    if len(hit_blocks.keys) != len(entry.keys) or len(hit_blocks.values) != len(entry.values):
        return False
    pairs = zip((*hit_blocks.keys, *hit_blocks.values), (*entry.keys, *entry.values), strict=True)
    return all(np.array_equal(np.asarray(a), np.asarray(b)[:, :n]) for a, b in pairs)


def expected_match(stored: Sequence[int], query: Sequence[int], block_size: int) -> int:
    """The port's matching rule, written token by token (independent of any adapter)."""
    common = 0
    for a, b in zip(stored, query, strict=False):
        if a != b:
            break
        common += 1
    if common == len(stored):
        return common
    return (common // block_size) * block_size


@contextmanager
def limited(make_adapter: Factory, **limits: Any) -> Iterator[Any]:
    """A store from the factory with limits, closed afterwards; skips if not accepted."""
    for name in limits:
        if not accepts_keyword(make_adapter, name):
            pytest.skip(f"the factory does not accept {name}=")
    store = make_adapter(**limits)
    try:
        yield store
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def assert_hot(store: CacheStore, agent: str, entry: AgentBlocks, what: str) -> None:
    hit = store.get(agent, entry.tokens)
    assert hit is not None, f"{what} ({agent}) was dropped"
    assert hit.tier is CacheTier.HOT, f"{what} ({agent}) left the hot tier (found in {hit.tier})"


def assert_left_hot(store: CacheStore, agent: str, entry: AgentBlocks, what: str) -> None:
    hit = store.get(agent, entry.tokens)
    if supports(store, TIERS):
        assert hit is not None, f"{what} ({agent}) was dropped instead of moved down"
        assert hit.tier is not CacheTier.HOT, f"{what} ({agent}) was not evicted from hot"
    else:
        assert hit is None, f"{what} ({agent}) was not evicted"


def tiers_of(store: CacheStore) -> tuple[CacheTier, ...]:
    """The store's tiers, hot first, as its stats list them."""
    listed = store.stats().entries
    return tuple(tier for tier in CacheTier if tier in listed)


def occupied(store: CacheStore) -> dict[CacheTier, int]:
    """Entries per tier, for the tiers holding any."""
    return {tier: n for tier, n in store.stats().entries.items() if n}


def sink(store: CacheStore, agent: str, depth: int) -> None:
    """Evict the agent's entry ``depth`` times (from hot to the ``depth``-th tier below)."""
    for _ in range(depth):
        assert store.evict(agent) is True, f"evict({agent!r}) of a stored entry returned False"
