"""CacheStore: per-agent KV caches with prefix matching, eviction and tiers (sync).

Contract
--------
* ``get(agent_id, tokens)`` returns the stored cache of that agent sharing the longest
  prefix with ``tokens``, at block granularity, as a :class:`CacheHit`: ``exact`` when the
  entry covers exactly ``tokens``; a shorter stored prefix is returned whole; a longer
  entry is trimmed to the matched prefix. ``None`` on no match.
* ``put`` stores (replacing) the agent's entry; the store respects its entry and byte
  limits by evicting least recently used, unpinned entries (moving them down a tier when
  tiers exist). A pinned entry is never evicted.
* ``evict`` moves an entry one tier down (dropping it from the last tier) and returns
  whether it was present; ``delete`` removes it from every tier. Both are idempotent.
* A hit in a lower tier moves the entry back to the hot tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from portfolio_core.ports.model_backend import AgentBlocks

__all__ = ["CacheHit", "CacheStore", "CacheStoreCapability", "CacheTier"]


class CacheTier(StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class CacheStoreCapability(StrEnum):
    TIERS = "cache_store.tiers"
    PINNING = "cache_store.pinning"


@dataclass(frozen=True, slots=True, eq=False)
class CacheHit:
    """A prefix match: the (possibly trimmed) blocks and how many tokens matched."""

    blocks: AgentBlocks
    matched_tokens: int
    exact: bool
    tier: CacheTier = CacheTier.HOT


@runtime_checkable
class CacheStore(Protocol):
    """Per-agent KV cache store; see the module docstring."""

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        """The longest stored prefix of ``tokens`` for ``agent_id``."""
        ...

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        """Store ``blocks`` as the agent's cache."""
        ...

    def evict(self, agent_id: str) -> bool:
        """Move the agent's entry one tier down; whether it was present."""
        ...

    def delete(self, agent_id: str) -> bool:
        """Remove the agent's entry from every tier; whether it was present."""
        ...
