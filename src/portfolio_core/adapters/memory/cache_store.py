"""The reference CacheStore: per-agent KV caches in memory, with warm and cold tiers.

Tiers (see docs/adapters/memory/cache_store.md):

* **hot** -- the [AgentBlocks][portfolio_core.ports.AgentBlocks] object itself, ready to hand to
  an engine;
* **warm** (optional, ``warm=True``) -- a compressed copy in process memory (pickle protocol
  5, then zlib); its bytes are the compressed size. A hit decompresses it;
* **cold** (optional) -- a [CachePersistence][portfolio_core.ports.CachePersistence] passed in as
  ``persistence=`` (e.g. safetensors files). A hit loads the file and deletes it.

Entries move down one tier when evicted (LRU of unpinned entries when a tier is over its
limits, or ``evict``), back to hot on a hit, and ``delete`` removes them everywhere.
"""

from __future__ import annotations

import pickle
import struct
import sys
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Self, overload

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
from portfolio_core.ports.shrinkable import ReleaseOrder

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
    read-only, as engines do; a lookup of a hot entry reads each query token once, however
    far the query and the entry agree. A cold load that the persistence refuses (another
    model) counts as a miss and leaves the file alone. It is
    [Shrinkable][portfolio_core.ports.Shrinkable] (`release`): under memory pressure its
    in-memory tiers spill down, and a pinned entry never moves.
    """

    config_model: ClassVar[type[BaseModel]] = MemoryCacheStoreConfig
    release_order: ClassVar[int] = ReleaseOrder.KV_TIER
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
        #: hot entries' tokens as machine integers (when all lie in [0, 2**63)), what a
        #: query is compared with
        self._hot_packed: dict[str, _Packed] = {}
        self._warm: OrderedDict[str, _Warm] = OrderedDict()
        self._warm_bytes = 0
        self._cold: OrderedDict[str, _Cold] = OrderedDict()
        self._pins: dict[str, int] = {}
        self._hits = 0
        self._misses = 0
        #: hits of the lower tiers (the hot tier's are the rest of _hits)
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
            self._hot_packed.clear()
            self._warm.clear()
            self._hot_bytes = self._warm_bytes = 0
            self._pins.clear()

    # -- the port -----------------------------------------------------------------------

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        kind = type(tokens)
        buffer = None if kind is list or kind is tuple else _int64_buffer(tokens)
        if buffer is None and kind is not list and kind is not tuple:
            tokens = tuple(tokens)
        stored = self._hot_packed.get(agent_id)
        if stored is not None and len(tokens):
            # Read outside the lock: the query is converted once, then compared in C.
            raw = buffer if buffer is not None else _pack_query(tokens, len(stored))
            if raw is not None:
                with self._lock:
                    blocks = self._hot.get(agent_id)
                    if blocks is not None and self._hot_packed.get(agent_id) is stored:
                        matched = self._match(stored, _Packed(raw))
                        return self._answer(agent_id, blocks, Tier.HOT, matched, len(tokens))
        # Lower tiers, entries or queries holding tokens outside [0, 2**63), and entries
        # changed since the look above: compare tuples of int objects.
        query = tuple(tokens if buffer is None else array("q", buffer).tolist())
        with self._lock:
            # Match on the tokens first: a lower tier's tensors are decoded or loaded only
            # for a hit.
            known = self._tokens_of(agent_id) if query else None
            if known is not None and self._match(tuple(known), query) == 0:
                self._misses += 1
                return None
            found = self._find(agent_id) if query else None
            if found is None:
                self._misses += 1
                return None
            blocks, tier = found
            matched = self._match(tuple(blocks.tokens), query)
            return self._answer(agent_id, blocks, tier, matched, len(query))

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
            self._pack_hot(agent_id, blocks)
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
                hits_by_tier={
                    **self._hits_by_tier,
                    Tier.HOT: self._hits - sum(self._hits_by_tier.values()),
                },
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

    # -- memory ---------------------------------------------------------------------------

    def resident_bytes(self) -> int:
        """Bytes of the in-memory tiers: hot tensors plus warm (compressed) copies, pinned
        entries included."""
        with self._lock:
            return self._hot_bytes + self._warm_bytes

    def release(self, nbytes: int) -> int:
        """Move entries out of memory until the in-memory tiers shrank by ``nbytes`` or only
        pinned entries are left; returns by how much they shrank.

        Warm copies go first (least recently used first), then unpinned hot entries (least
        recently used first). An entry goes to the cold tier when there is one -- a hot entry
        straight there, without a warm copy on the way -- else a hot entry becomes a warm
        copy when there is a warm tier (freeing the difference), else it is dropped; when
        that was not enough, the warm copies just made go too. Pinned entries never move.
        Each move counts as an eviction. A failed save to the cold tier raises what the
        persistence raised, and the entry stays where it was.
        """
        with self._lock:
            before = self._hot_bytes + self._warm_bytes

            def freed() -> int:
                return before - (self._hot_bytes + self._warm_bytes)

            def drain_warm() -> None:
                while freed() < nbytes and self._warm:
                    self._demote(next(iter(self._warm)), Tier.WARM)

            drain_warm()
            while freed() < nbytes:
                victim = next((a for a in self._hot if not self._pins.get(a)), None)
                if victim is None:
                    break
                self._spill(victim)
            drain_warm()  # the warm copies just made, when that was not enough
            self._enforce()
            return max(0, freed())

    def _spill(self, agent_id: str) -> None:
        """Move a hot entry out of memory: to the cold tier if any, else one tier down."""
        if self._persistence is None:
            self._demote(agent_id, Tier.HOT)
            return
        blocks = self._hot[agent_id]
        self._evictions += 1
        self._persistence.save(agent_id, blocks)  # first: a failed save loses nothing
        self._drop(agent_id, Tier.HOT)
        self._cold[agent_id] = _Cold(blocks.spec_hash, blocks.nbytes, blocks.tokens)

    # -- internals ------------------------------------------------------------------------

    def _match(self, stored: Sequence[int], query: Sequence[int]) -> int:
        """Tokens of ``stored`` usable for ``query`` (see the port's matching rule).

        Both are of one type: tuples of ints, or packed tokens.
        """
        if type(stored) is _Packed and type(query) is _Packed:
            return _matched_raw(stored.raw, query.raw, self._bs)
        return _matched_tokens(stored, query, self._bs)

    def _answer(
        self, agent_id: str, blocks: AgentBlocks, tier: Tier, matched: int, wanted: int
    ) -> CacheHit | None:
        """Count and return the lookup of ``wanted`` tokens that matched ``matched`` of the
        entry ``blocks`` found in ``tier`` (a miss for none)."""
        if matched == 0:
            self._misses += 1
            return None
        self._hits += 1
        if tier is Tier.HOT:
            self._hot.move_to_end(agent_id)
        else:
            self._hits_by_tier[tier] += 1
            self._promote(agent_id, blocks, tier)
        if matched < len(blocks.tokens):
            blocks = _trim(blocks, matched)
        return CacheHit(blocks, matched, matched == wanted, tier)

    def _pack_hot(self, agent_id: str, blocks: AgentBlocks) -> None:
        packed = _pack_entry(blocks.tokens)
        if packed is not None:
            self._hot_packed[agent_id] = packed

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
        self._pack_hot(agent_id, blocks)
        self._hot_bytes += blocks.nbytes
        self._promotions += 1
        self._enforce()

    def _drop(self, agent_id: str, tier: Tier) -> None:
        if tier is Tier.HOT:
            self._hot_bytes -= self._hot.pop(agent_id).nbytes
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
            assert self._persistence is not None  # noqa: S101  (a cold tier implies persistence)
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


#: where the most significant byte of each 8-byte machine integer sits
_TOP_BYTE = 7 if sys.byteorder == "little" else 0


class _Packed(Sequence[int]):
    """Tokens held as the bytes of unsigned 64-bit machine integers (native byte order)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __len__(self) -> int:
        return len(self.raw) // 8

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        items = memoryview(self.raw).cast("Q")
        return items[index] if isinstance(index, int) else items[index].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(memoryview(self.raw).cast("Q").tolist())


@lru_cache(maxsize=64)
def _packer(count: int) -> Callable[..., bytes]:
    """A function packing ``count`` ints into the bytes of unsigned 64-bit machine integers;
    it raises ``struct.error`` for anything but an int in [0, 2**64)."""
    return struct.Struct(f"{count}Q").pack


def _pack_entry(tokens: Sequence[int]) -> _Packed | None:
    """An entry's tokens packed, or None unless every token is an int in [0, 2**63) (so
    that their bytes also read the same as signed 64-bit integers)."""
    try:
        raw = _packer(len(tokens))(*tokens)
    except struct.error:
        return None
    return _Packed(raw) if raw[_TOP_BYTE::8].isascii() else None


def _pack_query(tokens: Sequence[int], n: int) -> bytes | None:
    """A list or tuple query as the bytes of unsigned 64-bit machine integers (at least its
    first ``n`` tokens, what an entry of ``n`` tokens is matched against), or None when one
    of them is not an int in [0, 2**64)."""
    if len(tokens) - n > n >> 2:
        tokens = tokens[:n]
    try:
        return _packer(len(tokens))(*tokens)
    except struct.error:
        return None


def _int64_buffer(tokens: Sequence[int]) -> bytes | None:
    """The bytes of a 1-D C-contiguous int64 buffer (a NumPy array, ``array("q")``), else None.

    Read as unsigned, a negative token is one of at least 2**63, equal to no packed entry's.
    """
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


def _matched_raw(stored: bytes, query: bytes, block_size: int) -> int:
    """`_matched_tokens` of tokens packed as 8 bytes each."""
    n = len(stored)
    m = len(query)
    if m >= n:
        if query.startswith(stored):
            return n // 8
        hi = n
    elif stored.startswith(query):
        return (m // 8) - (m // 8) % block_size
    else:
        hi = m
    # As in _matched_tokens, in bytes; slices of a memoryview compare without copies.
    block = 8 * block_size
    view = memoryview(stored)
    lo = 0
    while hi - lo > block:
        mid = (lo + hi) // (2 * block) * block
        if mid == lo:
            mid += block
        if query.startswith(view[lo:mid], lo):
            lo = mid
        else:
            hi = mid
    return lo // 8


def _matched_tokens(stored: Sequence[int], query: Sequence[int], block_size: int) -> int:
    """The port's matching rule: ``len(stored)`` when ``stored`` is a prefix of ``query``,
    else their common prefix rounded down to a multiple of ``block_size``.

    ``stored`` and ``query`` are of one sequence type whose slices compare element-wise
    (tuples, lists, arrays of one typecode).
    """
    n = len(stored)
    m = len(query)
    if m >= n:
        if (query if m == n else query[:n]) == stored:
            return n
        hi = n
    elif query == stored[:m]:
        return m - m % block_size
    else:
        hi = m
    # Binary search over block boundaries for the block holding the first difference.
    # Tokens before lo (a block boundary) are known equal and never compared again; the
    # first difference lies before hi. The work stays linear in the length.
    lo = 0
    while hi - lo > block_size:
        mid = (lo + hi) // (2 * block_size) * block_size
        if mid == lo:
            mid += block_size
        if query[lo:mid] == stored[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


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
    keys, values = pickle.loads(zlib.decompress(warm.payload))  # noqa: S301  (only bytes this process pickled)
    return AgentBlocks(agent_id, warm.tokens, keys, values, warm.spec_hash)
