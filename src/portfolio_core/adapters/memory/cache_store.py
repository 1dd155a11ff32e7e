"""The reference CacheStore: per-agent KV caches in memory, with warm and cold tiers.

Tiers (see docs/adapters/memory/cache_store.md):

* **hot** -- the :class:`~portfolio_core.ports.AgentBlocks` object itself, ready to hand to
  an engine;
* **warm** (optional, ``warm=True``) -- a compressed copy in process memory (pickle protocol
  5, then zlib); its bytes are the compressed size. A hit decompresses it;
* **cold** (optional) -- a :class:`~portfolio_core.ports.CachePersistence` passed in as
  ``persistence=`` (e.g. safetensors files). A hit loads the file and deletes it.

Entries move down one tier when evicted (LRU of unpinned entries when a tier is over its
limits, or ``evict``), back to hot on a hit, and ``delete`` removes them everywhere.
"""

from __future__ import annotations

import pickle
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.ports.cache_persistence import CachePersistence
from portfolio_core.ports.cache_store import CacheHit, CacheStoreCapability, CacheStoreStats
from portfolio_core.ports.cache_store import CacheTier as Tier
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from portfolio_core.ports.model_backend import AgentBlocks

__all__ = ["MemoryCacheStore", "MemoryCacheStoreConfig"]

_PORT = "CacheStore"


class MemoryCacheStoreConfig(BaseModel):
    """Limits of each tier (``None``: unlimited) and the matching granularity."""

    model_config = ConfigDict(extra="forbid")

    block_size: int = Field(16, ge=1)
    max_entries: int | None = Field(None, ge=0)
    max_bytes: int | None = Field(None, ge=0)
    #: keep evicted entries as compressed copies in memory before the cold tier
    warm: bool = False
    warm_max_entries: int | None = Field(None, ge=0)
    warm_max_bytes: int | None = Field(None, ge=0)
    #: zlib level of warm copies (0 stores them uncompressed)
    warm_compress_level: int = Field(1, ge=0, le=9)
    #: how many entries the cold tier keeps (only with a persistence)
    cold_max_entries: int | None = Field(None, ge=0)
    #: adopt caches already in the persistence at start, loading them with this spec hash
    spec_hash: str | None = None


@dataclass(slots=True)
class _Warm:
    payload: bytes
    tokens: tuple[int, ...]
    spec_hash: str
    raw_bytes: int


@dataclass(slots=True)
class _Cold:
    spec_hash: str
    raw_bytes: int
    #: known when this store spilled the entry (None for adopted files)
    tokens: tuple[int, ...] | None = None


class MemoryCacheStore:
    """A thread-safe CacheStore (``MemoryCacheStore(max_entries=8, max_bytes=2**30)``).

    Guarantees beyond the port: tensors are shared, not copied (the hot tier hands out the
    object it was given; a trimmed hit slices it with ``[:, :n]``), so callers treat them as
    read-only, as engines do; a lookup whose entry is a prefix of the query costs one tuple
    comparison in C. A cold load that the persistence refuses (another model) counts as a
    miss and leaves the file alone.
    """

    config_model: ClassVar[type[BaseModel]] = MemoryCacheStoreConfig
    #: the class offers both; an instance without warm tier or persistence drops TIERS
    capabilities: frozenset[str] = declare(CacheStoreCapability.PINNING, CacheStoreCapability.TIERS)

    def __init__(
        self,
        config: MemoryCacheStoreConfig | None = None,
        *,
        persistence: CachePersistence | None = None,
        **overrides: object,
    ) -> None:
        if config is None:
            config = MemoryCacheStoreConfig.model_validate(overrides)
        elif overrides:
            config = MemoryCacheStoreConfig.model_validate({**config.model_dump(), **overrides})
        self.config = config
        self._bs = config.block_size
        self._persistence = persistence
        self._lock = threading.RLock()
        self._hot: OrderedDict[str, AgentBlocks] = OrderedDict()
        self._hot_bytes = 0
        #: hot entries' tokens as lists, so a list query (what tokenizers return) is compared
        #: without converting it to a tuple first
        self._hot_lists: dict[str, list[int]] = {}
        #: hot entries' tokens as int64 bytes, made on the first buffer query
        self._hot_packed: dict[str, bytes] = {}
        self._warm: OrderedDict[str, _Warm] = OrderedDict()
        self._warm_bytes = 0
        self._cold: OrderedDict[str, _Cold] = OrderedDict()
        self._pins: dict[str, int] = {}
        self._hits = 0
        self._misses = 0
        self._hits_by_tier = dict.fromkeys(Tier, 0)
        self._evictions = 0
        self._promotions = 0
        #: what this instance offers: TIERS only when it has a tier below hot
        self.capabilities = (
            type(self).capabilities
            if len(self.tiers) > 1
            else declare(CacheStoreCapability.PINNING)
        )
        if persistence is not None and config.spec_hash is not None:
            for agent in persistence.list_cached_agents():
                self._cold[agent] = _Cold(config.spec_hash, 0)

    @classmethod
    def from_config(
        cls, config: MemoryCacheStoreConfig, *, persistence: CachePersistence | None = None
    ) -> Self:
        return cls(config, persistence=persistence)

    def __repr__(self) -> str:
        return (
            f"MemoryCacheStore(hot={len(self._hot)}, warm={len(self._warm)}, "
            f"cold={len(self._cold)}, block_size={self._bs})"
        )

    @property
    def block_size(self) -> int:
        return self._bs

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tiers this store has, hot first."""
        tiers = [Tier.HOT]
        if self.config.warm:
            tiers.append(Tier.WARM)
        if self._persistence is not None:
            tiers.append(Tier.COLD)
        return tuple(tiers)

    def close(self) -> None:
        """Forget the in-memory tiers (idempotent); files in the cold tier stay."""
        with self._lock:
            self._hot.clear()
            self._hot_lists.clear()
            self._hot_packed.clear()
            self._warm.clear()
            self._hot_bytes = self._warm_bytes = 0
            self._pins.clear()

    # -- the port -----------------------------------------------------------------------

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        packed = None if type(tokens) in (tuple, list) else _packed(tokens)
        query: Sequence[int]
        if packed is not None:
            if agent_id in self._hot:
                return self._get_packed(agent_id, packed)
            query = array("q", packed).tolist()
        else:
            query = tokens if type(tokens) in (tuple, list) else tuple(tokens)
        with self._lock:
            # Match on the tokens first: a lower tier's tensors are decoded or loaded only
            # for a hit.
            known = self._tokens_of(agent_id) if query else None
            if known is not None:
                stored: Sequence[int] = known
                if type(query) is list and type(known) is not list:
                    stored = list(known)
                if self._match(stored, query) == 0:
                    self._misses += 1
                    return None
            found = self._find(agent_id) if query else None
            if found is None:
                self._misses += 1
                return None
            blocks, tier = found
            stored = blocks.tokens
            if type(query) is list:
                listed = self._hot_lists.get(agent_id) if tier is Tier.HOT else None
                stored = listed if listed is not None else list(stored)
            matched = self._match(stored, query)
            if matched == 0:
                self._misses += 1
                return None
            self._hits += 1
            self._hits_by_tier[tier] += 1
            if tier is Tier.HOT:
                self._hot.move_to_end(agent_id)
            else:
                self._promote(agent_id, blocks, tier)
            if matched < len(blocks.tokens):
                blocks = _trim(blocks, matched)
            return CacheHit(blocks, matched, matched == len(query), tier)

    def _get_packed(self, agent_id: str, packed: bytes) -> CacheHit | None:
        """``get`` of a hot entry for an int64 buffer query: memcmp instead of int objects."""
        with self._lock:
            blocks = self._hot.get(agent_id)
            if blocks is None:  # moved since the caller looked: take the general path
                return self.get(agent_id, array("q", packed).tolist())
            stored = self._hot_packed.get(agent_id)
            if stored is None:
                stored = self._hot_packed[agent_id] = array("q", blocks.tokens).tobytes()
            matched = _match_packed(stored, packed, self._bs)
            if matched == 0:
                self._misses += 1
                return None
            self._hits += 1
            self._hits_by_tier[Tier.HOT] += 1
            self._hot.move_to_end(agent_id)
            if matched < len(blocks.tokens):
                blocks = _trim(blocks, matched)
            return CacheHit(blocks, matched, matched * 8 == len(packed), Tier.HOT)

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        _check_agent(agent_id)
        if not isinstance(blocks, AgentBlocks):
            raise InvalidInputError("blocks must be AgentBlocks", field="blocks", port=_PORT)
        if blocks.agent_id != agent_id:
            raise InvalidInputError(
                f"blocks of agent {blocks.agent_id!r} put for agent {agent_id!r}",
                field="blocks",
                port=_PORT,
            )
        if not blocks.tokens:
            raise InvalidInputError("blocks cover no token", field="blocks", port=_PORT)
        with self._lock:
            self._remove_everywhere(agent_id, keep_pins=True)
            self._hot[agent_id] = blocks
            self._hot_lists[agent_id] = list(blocks.tokens)
            self._hot_bytes += blocks.nbytes
            self._enforce()

    def evict(self, agent_id: str) -> bool:
        with self._lock:
            if self._pins.get(agent_id):
                raise ConflictError(f"the cache of agent {agent_id!r} is pinned", port=_PORT)
            tier = self.tier_of(agent_id)
            if tier is None:
                return False
            self._demote(agent_id, tier)
            self._enforce()
            return True

    def delete(self, agent_id: str) -> bool:
        with self._lock:
            return self._remove_everywhere(agent_id, keep_pins=False)

    def pin(self, agent_id: str) -> None:
        with self._lock:
            found = self._find(agent_id)
            if found is None:
                raise NotFoundError(f"no cache for agent {agent_id!r}", key=agent_id, port=_PORT)
            blocks, tier = found
            self._pins[agent_id] = self._pins.get(agent_id, 0) + 1  # first: never a victim
            if tier is not Tier.HOT:
                self._promote(agent_id, blocks, tier)

    def unpin(self, agent_id: str) -> bool:
        with self._lock:
            count = self._pins.get(agent_id, 0)
            if count == 0:
                return False
            if count == 1:
                del self._pins[agent_id]
                self._enforce()
            else:
                self._pins[agent_id] = count - 1
            return True

    def stats(self) -> CacheStoreStats:
        with self._lock:
            entries = {Tier.HOT: len(self._hot)}
            sizes = {Tier.HOT: self._hot_bytes}
            if self.config.warm:
                entries[Tier.WARM] = len(self._warm)
                sizes[Tier.WARM] = self._warm_bytes
            if self._persistence is not None:
                entries[Tier.COLD] = len(self._cold)
                sizes[Tier.COLD] = sum(c.raw_bytes for c in self._cold.values())
            return CacheStoreStats(
                hits=self._hits,
                misses=self._misses,
                hits_by_tier=dict(self._hits_by_tier),
                entries=entries,
                bytes=sizes,
                evictions=self._evictions,
                promotions=self._promotions,
            )

    # -- beyond the port ------------------------------------------------------------------

    def tier_of(self, agent_id: str) -> Tier | None:
        """The tier holding the agent's entry, or None (changes nothing, counts nothing)."""
        with self._lock:
            if agent_id in self._hot:
                return Tier.HOT
            if agent_id in self._warm:
                return Tier.WARM
            if agent_id in self._cold:
                return Tier.COLD
            return None

    def pinned(self, agent_id: str) -> int:
        """How many pins the agent's entry holds."""
        return self._pins.get(agent_id, 0)

    def agents(self) -> list[str]:
        """Sorted ids of agents with an entry in any tier."""
        with self._lock:
            return sorted({*self._hot, *self._warm, *self._cold})

    # -- internals ------------------------------------------------------------------------

    def _match(self, stored: Sequence[int], query: Sequence[int]) -> int:
        """Tokens of ``stored`` usable for ``query`` (see the port's matching rule).

        First one slice comparison (the entry is a prefix of the query: the usual case);
        otherwise chunks of 16 blocks (C-level, stopping at the first difference), then
        single blocks inside the chunk that differs.
        """
        n = len(stored)
        if len(query) >= n and query[:n] == stored:  # the usual case: one comparison
            return n
        m = min(n, len(query))
        bs = self._bs
        step = bs * 16
        i = 0
        while i < m:
            j = min(i + step, m)
            if query[i:j] != stored[i:j]:
                while i + bs <= j and query[i : i + bs] == stored[i : i + bs]:
                    i += bs
                return i
            i = j
        return n if m == n else (m // bs) * bs

    def _tokens_of(self, agent_id: str) -> Sequence[int] | None:
        """The entry's tokens when known without decoding: None for hot entries (cheap to
        match directly), unknown agents and adopted cold files."""
        warm = self._warm.get(agent_id)
        if warm is not None:
            return warm.tokens
        cold = self._cold.get(agent_id)
        return cold.tokens if cold is not None else None

    def _find(self, agent_id: str) -> tuple[AgentBlocks, Tier] | None:
        blocks = self._hot.get(agent_id)
        if blocks is not None:
            return blocks, Tier.HOT
        warm = self._warm.get(agent_id)
        if warm is not None:
            return _decode(agent_id, warm), Tier.WARM
        cold = self._cold.get(agent_id)
        if cold is not None and self._persistence is not None:
            try:
                return self._persistence.load(agent_id, cold.spec_hash), Tier.COLD
            except NotFoundError:
                del self._cold[agent_id]  # removed behind our back
            except InvalidInputError:
                return None  # a cache of another model: refused, left in place
        return None

    def _promote(self, agent_id: str, blocks: AgentBlocks, tier: Tier) -> None:
        self._drop(agent_id, tier)
        self._hot[agent_id] = blocks
        self._hot_lists[agent_id] = list(blocks.tokens)
        self._hot_bytes += blocks.nbytes
        self._promotions += 1
        self._enforce()

    def _drop(self, agent_id: str, tier: Tier) -> None:
        if tier is Tier.HOT:
            self._hot_bytes -= self._hot.pop(agent_id).nbytes
            self._hot_lists.pop(agent_id, None)
            self._hot_packed.pop(agent_id, None)
        elif tier is Tier.WARM:
            self._warm_bytes -= len(self._warm.pop(agent_id).payload)
        else:
            del self._cold[agent_id]
            if self._persistence is not None:
                self._persistence.delete(agent_id)

    def _demote(self, agent_id: str, tier: Tier) -> None:
        """Move the entry from ``tier`` to the next tier down, or drop it from the last."""
        self._evictions += 1
        tiers = self.tiers
        below = tiers[tiers.index(tier) + 1] if tier != tiers[-1] else None
        if below is None:
            self._drop(agent_id, tier)
            return
        blocks = (
            self._hot[agent_id] if tier is Tier.HOT else _decode(agent_id, self._warm[agent_id])
        )
        if below is Tier.WARM:
            warm = _encode(blocks, self.config.warm_compress_level)
            self._drop(agent_id, tier)
            self._warm[agent_id] = warm
            self._warm_bytes += len(warm.payload)
        else:
            assert self._persistence is not None
            self._persistence.save(agent_id, blocks)  # first: a failed save loses nothing
            self._drop(agent_id, tier)
            self._cold[agent_id] = _Cold(blocks.spec_hash, blocks.nbytes, blocks.tokens)

    def _enforce(self) -> None:
        cfg = self.config
        self._shrink(Tier.HOT, cfg.max_entries, cfg.max_bytes)
        if cfg.warm:
            self._shrink(Tier.WARM, cfg.warm_max_entries, cfg.warm_max_bytes)
        if self._persistence is not None:
            self._shrink(Tier.COLD, cfg.cold_max_entries, None)

    def _shrink(self, tier: Tier, max_entries: int | None, max_bytes: int | None) -> None:
        table: OrderedDict[str, Any] = (
            self._hot if tier is Tier.HOT else self._warm if tier is Tier.WARM else self._cold
        )

        def over() -> bool:
            size = self._hot_bytes if tier is Tier.HOT else self._warm_bytes
            return (max_entries is not None and len(table) > max_entries) or (
                max_bytes is not None and size > max_bytes
            )

        while over():
            victim = next((a for a in table if not self._pins.get(a)), None)
            if victim is None:
                return  # only pinned entries left: over the limit until they are unpinned
            self._demote(victim, tier)

    def _remove_everywhere(self, agent_id: str, *, keep_pins: bool) -> bool:
        present = False
        for tier in (Tier.HOT, Tier.WARM):
            table: OrderedDict[str, Any] = self._hot if tier is Tier.HOT else self._warm
            if agent_id in table:
                self._drop(agent_id, tier)
                present = True
        if agent_id in self._cold:
            self._drop(agent_id, Tier.COLD)
            present = True
        elif self._persistence is not None and not keep_pins:
            present = self._persistence.delete(agent_id) or present
        if not keep_pins:
            self._pins.pop(agent_id, None)
        return present


def _check_agent(agent_id: str) -> None:
    if not isinstance(agent_id, str) or not agent_id:
        raise InvalidInputError("agent_id must be a non-empty string", field="agent_id", port=_PORT)


def _packed(tokens: Sequence[int]) -> bytes | None:
    """The bytes of a 1-D C-contiguous int64 buffer (a NumPy array, ``array("q")``), else None."""
    try:
        view = memoryview(tokens)  # type: ignore[arg-type]  # any buffer; others raise
    except TypeError:
        return None
    with view:
        if view.ndim != 1 or view.itemsize != 8 or view.format not in ("q", "l", "<q", "<l"):
            return None
        if not view.c_contiguous:
            return None
        return view.tobytes()


def _match_packed(stored: bytes, query: bytes, bs: int) -> int:
    """The port's matching rule on int64 bytes (8 per token), compared with memcmp."""
    n = len(stored)
    if len(query) >= n and query.startswith(stored):
        return n // 8
    m = min(n, len(query))
    block = 8 * bs
    step = block * 16
    i = 0
    while i < m:
        j = min(i + step, m)
        if query[i:j] != stored[i:j]:
            while i + block <= j and query[i : i + block] == stored[i : i + block]:
                i += block
            return i // 8
        i = j
    return n // 8 if m == n else (m // block) * bs


def _trim(blocks: AgentBlocks, n: int) -> AgentBlocks:
    return AgentBlocks(
        blocks.agent_id,
        blocks.tokens[:n],
        tuple(k[:, :n] for k in blocks.keys),
        tuple(v[:, :n] for v in blocks.values),
        blocks.spec_hash,
    )


def _encode(blocks: AgentBlocks, level: int) -> _Warm:
    data = pickle.dumps((blocks.keys, blocks.values), protocol=5)
    return _Warm(zlib.compress(data, level), blocks.tokens, blocks.spec_hash, blocks.nbytes)


def _decode(agent_id: str, warm: _Warm) -> AgentBlocks:
    # Only bytes this process pickled itself are ever unpickled here.
    keys, values = pickle.loads(zlib.decompress(warm.payload))
    return AgentBlocks(agent_id, warm.tokens, keys, values, warm.spec_hash)
