"""CacheStore: per-agent KV caches with prefix matching, eviction and tiers (sync).

Contract
--------
* Each agent has at most one entry: the [AgentBlocks][portfolio_core.ports.AgentBlocks] last
  ``put`` for it. ``put`` replaces the agent's entry (in whatever tier it was) and puts it in
  the hot tier as the most recently used. ``put`` raises
  [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] for an empty ``agent_id``,
  blocks
  of another agent (``blocks.agent_id != agent_id``) or blocks covering no token; nothing is
  stored then.
* ``get(agent_id, tokens)`` matches the agent's entry against ``tokens`` at block
  granularity (``block_size`` tokens, a property of the store) and returns a
  [CacheHit][portfolio_core.ports.cache_store.CacheHit]:

  - the entry is a prefix of ``tokens`` (equal included): it is returned whole,
    ``matched_tokens == len(entry.tokens)``;
  - otherwise (the entry is longer, or diverges): the entry trimmed to the longest common
    prefix rounded **down** to a whole number of blocks; ``None`` when that is zero blocks.

  ``exact`` is ``matched_tokens == len(tokens)`` (the hit covers the whole query). ``tier``
  is the tier the entry was found in. ``None`` for an unknown agent or empty ``tokens``.
  The returned blocks are never aliased by the store's later changes (trimming copies).
  ``tokens`` may be any sequence of ints (a list, a tuple, a ``range``, an ``array("q")``,
  a 1-D int64 NumPy array): the answer depends on its values only. Tokens are token ids
  that fit a signed 64-bit integer (negative ones included); larger ones are outside the
  contract (a tier on disk may fail to store them). An entry matches by
  the same rule in every tier, and a lower tier gives back the tokens and tensors it was
  given, unchanged.
* A hit makes the entry the most recently used and moves it back to the hot tier. A miss
  changes nothing but the statistics: the entry keeps its tier and its place in the
  least-recently-used order.
* Tiers: hot, then the lower tiers the store has, in the order warm, cold (either or
  both; a store declares the capability ``TIERS`` exactly when it has one).
* Limits: ``max_entries`` and ``max_bytes`` of the hot tier (and of the lower tiers, when
  configured) are respected after every call by moving least recently used, **unpinned**
  entries one tier down (dropping them from the last tier). Pinned entries are never moved
  by eviction; a tier holding only pinned entries may exceed its limits until they are
  unpinned (the ``unpin`` releasing an entry's last pin restores the limits).
* ``evict`` moves the agent's entry one tier down (dropping it from the last tier) and
  returns whether it was present; it raises
  [ConflictError][portfolio_core.ports.errors.ConflictError] for a pinned entry. ``delete`` removes
  the entry from every tier (pins included) and returns whether it was present. Both are
  idempotent for an absent agent.
* Pinning (capability ``PINNING``): ``pin`` marks the entry as in use (counted: every
  ``pin`` needs an ``unpin``), promoting it to the hot tier; it raises NotFoundError when the
  agent has no entry. A replacing ``put`` keeps the agent's pins; ``delete`` drops them.
  ``unpin`` returns whether a pin was released. Without the capability
  both raise [UnsupportedError][portfolio_core.ports.errors.UnsupportedError].
* ``stats`` is a snapshot: hits and misses since creation (every ``get`` is one or the
  other); ``hits_by_tier``, the hits split by the tier the entry was found in (they sum to
  ``hits``); ``evictions``, every move of an entry one tier down or out of the last tier,
  whether the limits or ``evict`` caused it (``delete`` and a replacing ``put`` are not
  evictions); ``promotions``, every move of an entry from a lower tier back to hot (by a
  hit or a ``pin``). ``entries`` and ``bytes`` have a key for every tier the store has, 0
  for an empty tier: the hot tier's bytes are the sum of its entries' ``nbytes``, a lower
  tier's are in the adapter's own measure (a compressed size, say) and 0 when it holds
  nothing.
  It is the caller's own: changing its mappings changes nothing the store reports later,
  and the store's later calls never change a stats already returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from portfolio_core.ports.model_backend import AgentBlocks

__all__ = ["CacheHit", "CacheStore", "CacheStoreCapability", "CacheStoreStats", "CacheTier"]


class CacheTier(StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class CacheStoreCapability(StrEnum):
    #: entries move down to warm/cold tiers instead of being dropped
    TIERS = "cache_store.tiers"
    #: ``pin``/``unpin`` protect entries in use from eviction
    PINNING = "cache_store.pinning"


@dataclass(frozen=True, slots=True, eq=False)
class CacheHit:
    """A prefix match: the (possibly trimmed) blocks and how many tokens matched."""

    blocks: AgentBlocks
    matched_tokens: int
    exact: bool
    tier: CacheTier = CacheTier.HOT


@dataclass(frozen=True, slots=True)
class CacheStoreStats:
    """A snapshot of a store's counters and occupancy (``entries``/``bytes`` by tier)."""

    hits: int = 0
    misses: int = 0
    hits_by_tier: Mapping[CacheTier, int] = field(default_factory=dict)
    entries: Mapping[CacheTier, int] = field(default_factory=dict)
    bytes: Mapping[CacheTier, int] = field(default_factory=dict)
    evictions: int = 0
    promotions: int = 0

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0.0 before the first lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@runtime_checkable
class CacheStore(Protocol):
    """Per-agent KV cache store; see the module docstring."""

    @property
    def block_size(self) -> int:
        """Tokens per block: the granularity of prefix matching."""
        ...

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        """The agent's entry matched against ``tokens`` at block granularity, or None."""
        ...

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        """Store ``blocks`` as the agent's entry (replacing), in the hot tier."""
        ...

    def evict(self, agent_id: str) -> bool:
        """Move the agent's entry one tier down; whether it was present."""
        ...

    def delete(self, agent_id: str) -> bool:
        """Remove the agent's entry from every tier; whether it was present."""
        ...

    def pin(self, agent_id: str) -> None:
        """Protect the agent's entry from eviction until the matching ``unpin``."""
        ...

    def unpin(self, agent_id: str) -> bool:
        """Release one pin of the agent's entry; whether there was one."""
        ...

    def stats(self) -> CacheStoreStats:
        """Hits, misses, entries and bytes per tier (a snapshot)."""
        ...
