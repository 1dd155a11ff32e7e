"""The KV block pool: reference counts, an LRU free queue and the prefix-cache index.

A block is *free* when no request holds it (reference count 0); free blocks wait in LRU
order and the oldest is reused first. A free block may still be *cached*: it keeps its
content hash so a later request with the same prefix can take it back (a hit) until it is
reused for something else (an eviction).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from portfolio_core.ports.errors import PoolExhaustedError

__all__ = ["BlockPool", "chain_hash"]


def chain_hash(parent: bytes, tokens: Sequence[int]) -> bytes:
    """Hash of a full block given its parent's hash: equal hashes mean equal prefixes."""
    return hashlib.blake2b(parent + array("q", tokens).tobytes(), digest_size=16).digest()


class BlockPool:
    """A fixed number of blocks; not thread safe (the engine is single threaded)."""

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self.ref_cnt = [0] * num_blocks
        self.block_hash: list[bytes | None] = [None] * num_blocks
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._cached: dict[bytes, int] = {}
        self.evictions = 0
        #: blocks allocated since they were last forgotten (their storage holds data)
        self.dirty: set[int] = set()

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_cached(self) -> int:
        return len(self._cached)

    def free_order(self) -> list[int]:
        """Free blocks, least recently freed first (the next to be reused)."""
        return list(self._free)

    def allocate(self, n: int) -> list[int]:
        if n > len(self._free):
            raise PoolExhaustedError(
                f"{n} blocks wanted, {len(self._free)} free", needed=n, total=self.num_blocks
            )
        out = []
        for _ in range(n):
            block, _ = self._free.popitem(last=False)
            h = self.block_hash[block]
            if h is not None:  # reusing a cached block evicts its content
                self.block_hash[block] = None
                if self._cached.get(h) == block:
                    del self._cached[h]
                self.evictions += 1
            self.ref_cnt[block] = 1
            self.dirty.add(block)
            out.append(block)
        return out

    def forget(self, blocks: Iterable[int]) -> None:
        """Drop free blocks from the prefix cache and mark them clean (their storage is being
        handed back); blocks still referenced are left alone."""
        for block in blocks:
            if self.ref_cnt[block]:
                continue
            h = self.block_hash[block]
            if h is not None:
                self.block_hash[block] = None
                if self._cached.get(h) == block:
                    del self._cached[h]
            self.dirty.discard(block)

    def touch(self, blocks: Iterable[int]) -> None:
        """Take a reference on cached blocks (a prefix hit), pulling free ones off the queue."""
        for block in blocks:
            if self.ref_cnt[block] == 0:
                del self._free[block]
            self.ref_cnt[block] += 1

    def release(self, blocks: Sequence[int]) -> None:
        """Drop one reference on each block; tail blocks first, so they are evicted first."""
        for block in reversed(blocks):
            self.ref_cnt[block] -= 1
            if self.ref_cnt[block] == 0:
                self._free[block] = None

    def lookup(self, h: bytes) -> int | None:
        return self._cached.get(h)

    def cache(self, block: int, h: bytes) -> None:
        """Register a full block's hash (first writer wins; duplicates stay private)."""
        if self.block_hash[block] is None and h not in self._cached:
            self.block_hash[block] = h
            self._cached[h] = block
