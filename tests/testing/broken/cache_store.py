"""Deliberately broken variants of the memory CacheStore, one bug each.

Each names the clause of the CacheStore kit it breaks (``clause``). All run with a warm tier
so that the tier clauses apply.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from portfolio_core.adapters.memory.cache_store import MemoryCacheStore
from portfolio_core.ports import AgentBlocks, CacheHit, CacheStoreStats, CacheTier


class Base(MemoryCacheStore):
    clause: ClassVar[str] = ""

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("warm", True)
        super().__init__(**kw)


def factory_for(cls: type[Base]) -> Callable[..., Base]:
    """A factory naming the limit keywords the kit passes."""

    def make(
        max_entries: int | None = None, max_bytes: int | None = None, block_size: int = 16
    ) -> Base:
        return cls(max_entries=max_entries, max_bytes=max_bytes, block_size=block_size)

    return make


class PrefixOffByOneBlock(Base):
    """A diverging or longer entry matches one block less than it should."""

    clause = "cache_store.get.longer_trimmed"

    def _match(self, stored: Sequence[int], query: Sequence[int]) -> int:
        n = super()._match(stored, query)
        return n if n == len(stored) else max(0, n - self.block_size)


class TrimReturnsTooManyTokens(Base):
    """A longer entry is trimmed to the query's length, not to whole blocks."""

    clause = "cache_store.get.longer_trimmed"

    def _match(self, stored: Sequence[int], query: Sequence[int]) -> int:
        n = super()._match(stored, query)
        if n < len(stored) and list(stored[: len(query)]) == list(query):
            return len(query)
        return n


class TrimKeepsWholeTensors(Base):
    """A trimmed hit reports the right count but hands out the untrimmed entry."""

    clause = "cache_store.get.longer_trimmed"

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        hit = super().get(agent_id, tokens)
        whole = self._hot.get(agent_id)
        if hit is None or whole is None:
            return hit
        return CacheHit(whole, hit.matched_tokens, hit.exact, hit.tier)


class DivergenceMatchesPartialBlock(Base):
    """A diverging entry matches token by token instead of whole blocks."""

    clause = "cache_store.get.diverging"

    def _match(self, stored: Sequence[int], query: Sequence[int]) -> int:
        n = 0
        for a, b in zip(stored, query, strict=False):
            if a != b:
                break
            n += 1
        return n


class ExactWhenEntryMatchedWhole(Base):
    """``exact`` is set whenever the whole entry matched, even if the query is longer."""

    clause = "cache_store.get.shorter_prefix"

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        hit = super().get(agent_id, tokens)
        if hit is None:
            return None
        return CacheHit(hit.blocks, hit.matched_tokens, True, hit.tier)


class PinnedEntryEvicted(Base):
    """Limits evict the least recently used entry even when it is pinned."""

    clause = "cache_store.pin.protects"

    def _shrink(self, tier: CacheTier, max_entries: int | None, max_bytes: int | None) -> None:
        pins, self._pins = self._pins, {}
        try:
            super()._shrink(tier, max_entries, max_bytes)
        finally:
            self._pins = pins


class EvictIgnoresPin(Base):
    """An explicit evict moves a pinned entry down."""

    clause = "cache_store.pin.evict_refused"

    def evict(self, agent_id: str) -> bool:
        pins = self._pins.pop(agent_id, 0)
        try:
            return super().evict(agent_id)
        finally:
            if pins:
                self._pins[agent_id] = pins


class LruOrderIsInsertionOrder(Base):
    """A hit does not refresh recency: eviction is first in, first out."""

    clause = "cache_store.lru.entries"

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        order = list(self._hot)
        hit = super().get(agent_id, tokens)
        if agent_id in order and agent_id in self._hot:
            for a in order:
                if a in self._hot:
                    self._hot.move_to_end(a)
        return hit


class ByteLimitIgnored(Base):
    """``max_bytes`` is never enforced."""

    clause = "cache_store.lru.bytes"

    def __init__(self, **kw: Any) -> None:
        kw["max_bytes"] = None
        super().__init__(**kw)


class DeleteLeavesLowerCopy(Base):
    """delete removes only the hot copy; a warm copy survives."""

    clause = "cache_store.delete.everywhere"

    def delete(self, agent_id: str) -> bool:
        with self._lock:
            if agent_id in self._hot:
                self._drop(agent_id, CacheTier.HOT)
                return True
            return agent_id in self._warm


class HitDoesNotPromote(Base):
    """A hit in the warm tier leaves the entry there."""

    clause = "cache_store.hit.promotes"

    def _promote(self, agent_id: str, blocks: AgentBlocks, tier: CacheTier) -> None:
        self._promotions += 1


class EvictDropsEntry(Base):
    """evict drops the entry instead of moving it down a tier."""

    clause = "cache_store.evict.moves_down"

    def evict(self, agent_id: str) -> bool:
        if self._pins.get(agent_id):
            return super().evict(agent_id)
        return self.delete(agent_id)


class PutKeepsOldEntry(Base):
    """put of an agent that already has an entry keeps the old one."""

    clause = "cache_store.put.replaces"

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        if self.tier_of(agent_id) is None:
            super().put(agent_id, blocks)


class AcceptsAnotherAgentsBlocks(Base):
    """put does not check that the blocks belong to the agent."""

    clause = "cache_store.put.invalid"

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        if agent_id and blocks.tokens:
            blocks = AgentBlocks(
                agent_id, blocks.tokens, blocks.keys, blocks.values, blocks.spec_hash
            )
        super().put(agent_id, blocks)


class MissesNotCounted(Base):
    """stats counts hits but forgets misses."""

    clause = "cache_store.stats"

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        misses = self._misses
        hit = super().get(agent_id, tokens)
        self._misses = misses
        return hit


class StatsShareTheirCounts(Base):
    """Hands out its own live dicts of entries and bytes per tier inside every stats."""

    clause = "cache_store.snapshots"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._live: CacheStoreStats | None = None

    def stats(self) -> CacheStoreStats:
        fresh = super().stats()
        if self._live is None:
            self._live = fresh
        else:
            for kept, now in (
                (self._live.entries, fresh.entries),
                (self._live.bytes, fresh.bytes),
                (self._live.hits_by_tier, fresh.hits_by_tier),
            ):
                kept.clear()  # type: ignore[attr-defined]
                kept.update(now)  # type: ignore[attr-defined]
        return replace(
            fresh,
            entries=self._live.entries,
            bytes=self._live.bytes,
            hits_by_tier=self._live.hits_by_tier,
        )


class StatsListOnlyOccupiedTiers(Base):
    """stats leaves out the tiers that hold nothing (an empty store lists no tier at all)."""

    clause = "cache_store.stats.tiers"

    def stats(self) -> CacheStoreStats:
        fresh = super().stats()
        kept = {tier for tier, n in fresh.entries.items() if n}
        return replace(
            fresh,
            entries={t: n for t, n in fresh.entries.items() if t in kept},
            bytes={t: n for t, n in fresh.bytes.items() if t in kept},
        )


class EvictNotCounted(Base):
    """An explicit evict moves the entry down but is not counted as an eviction."""

    clause = "cache_store.evict.descends"

    def evict(self, agent_id: str) -> bool:
        before = self._evictions
        try:
            return super().evict(agent_id)
        finally:
            self._evictions = before


class MissInLowerTierPromotes(Base):
    """A lookup that misses an entry in the warm tier still moves it back to hot."""

    clause = "cache_store.tiers.match"

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        hit = super().get(agent_id, tokens)
        if hit is None and agent_id in self._warm:
            with self._lock:
                found = self._find(agent_id)
                if found is not None:
                    self._promote(agent_id, found[0], found[1])
        return hit


class BufferReadAsInt64(Base):
    """A query that is a buffer is read as 64-bit integers whatever its item size."""

    clause = "cache_store.get.sequence_types"

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        if not isinstance(tokens, list | tuple | range):
            raw = memoryview(tokens).tobytes()  # type: ignore[arg-type]
            tokens = array("q", raw + b"\0" * (-len(raw) % 8))
        return super().get(agent_id, tokens)


class PutLeavesLowerCopy(Base):
    """put of an agent whose entry is in the warm tier leaves the warm copy there too."""

    clause = "cache_store.put.from_lower_tier"

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        old = self._warm.get(agent_id)
        super().put(agent_id, blocks)
        if old is not None:
            with self._lock:
                self._warm[agent_id] = old
                self._warm_bytes += len(old.payload)


class LowerHitsCountedHot(Base):
    """hits_by_tier credits every hit to the hot tier."""

    clause = "cache_store.stats.by_tier"

    def stats(self) -> CacheStoreStats:
        fresh = super().stats()
        return replace(fresh, hits_by_tier={CacheTier.HOT: fresh.hits})


class LimitEvictionsNotCounted(Base):
    """Entries the limits move down are not counted as evictions (evict's are)."""

    clause = "cache_store.stats.evictions"

    def _shrink(self, tier: CacheTier, max_entries: int | None, max_bytes: int | None) -> None:
        before = self._evictions
        super()._shrink(tier, max_entries, max_bytes)
        self._evictions = before


class EvictionsNeverCounted(Base):
    """stats reports no eviction, ever."""

    clause = "cache_store.model"

    def stats(self) -> CacheStoreStats:
        return replace(super().stats(), evictions=0)


class MissRefreshesRecency(Base):
    """A missed lookup makes the agent's hot entry the most recently used."""

    clause = "cache_store.miss.keeps_recency"

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        hit = super().get(agent_id, tokens)
        if hit is None and agent_id in self._hot:
            self._hot.move_to_end(agent_id)
        return hit


class PinLeavesEntryLow(Base):
    """pin of an entry in the warm tier counts the pin but leaves the entry there."""

    clause = "cache_store.pin.promotes"

    def pin(self, agent_id: str) -> None:
        if self.tier_of(agent_id) is None:
            super().pin(agent_id)  # raises NotFoundError
        self._pins[agent_id] = self._pins.get(agent_id, 0) + 1


class PutDropsPins(Base):
    """A replacing put forgets the agent's pins."""

    clause = "cache_store.pin.kept_by_put"

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        super().put(agent_id, blocks)
        self._pins.pop(agent_id, None)


class DeleteKeepsPins(Base):
    """delete removes the entry but keeps its pins for the agent's next entry."""

    clause = "cache_store.delete.pins"

    def delete(self, agent_id: str) -> bool:
        pins = self._pins.get(agent_id, 0)
        present = super().delete(agent_id)
        if pins:
            self._pins[agent_id] = pins
        return present


class UnpinLeavesLimits(Base):
    """Releasing the last pin does not restore the limits (until the next put)."""

    clause = "cache_store.pin.unpin_restores_limits"

    def unpin(self, agent_id: str) -> bool:
        count = self._pins.get(agent_id, 0)
        if count == 0:
            return False
        if count == 1:
            del self._pins[agent_id]
        else:
            self._pins[agent_id] = count - 1
        return True


class SearchCappedAtEightBlocks(Base):
    """The search for a divergence looks at the first eight blocks only."""

    clause = "cache_store.get.anywhere"

    def _match(self, stored: Sequence[int], query: Sequence[int]) -> int:
        n = super()._match(stored, query)
        return n if n == len(stored) else min(n, 8 * self.block_size)


class BufferReadUnsigned(Base):
    """A query that is an int64 buffer is read as unsigned: negative tokens never match."""

    clause = "cache_store.get.negative"

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        if not isinstance(tokens, list | tuple | range):
            tokens = array("Q", memoryview(tokens).tobytes()).tolist()  # type: ignore[arg-type]
        return super().get(agent_id, tokens)


VARIANTS: tuple[type[Base], ...] = (
    StatsShareTheirCounts,
    PrefixOffByOneBlock,
    TrimReturnsTooManyTokens,
    TrimKeepsWholeTensors,
    DivergenceMatchesPartialBlock,
    ExactWhenEntryMatchedWhole,
    PinnedEntryEvicted,
    EvictIgnoresPin,
    LruOrderIsInsertionOrder,
    ByteLimitIgnored,
    DeleteLeavesLowerCopy,
    HitDoesNotPromote,
    EvictDropsEntry,
    PutKeepsOldEntry,
    AcceptsAnotherAgentsBlocks,
    MissesNotCounted,
    StatsListOnlyOccupiedTiers,
    EvictNotCounted,
    MissInLowerTierPromotes,
    BufferReadAsInt64,
    PutLeavesLowerCopy,
    LowerHitsCountedHot,
    LimitEvictionsNotCounted,
    EvictionsNeverCounted,
    MissRefreshesRecency,
    PinLeavesEntryLow,
    PutDropsPins,
    DeleteKeepsPins,
    UnpinLeavesLimits,
    SearchCappedAtEightBlocks,
    BufferReadUnsigned,
)
