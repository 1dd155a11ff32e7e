"""What a component that can give memory back offers a memory budget. Standard library only.

A component is *shrinkable* when it keeps something in process memory that it can drop or
move out of memory and rebuild later (a cache, a KV tier, a prefix cache). A memory budget
(``portfolio_core.services.memory``) asks the shrinkable components of a registry to
`release` bytes when the process is over its budget, in `ReleaseOrder`: the cheapest
to rebuild first.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol, runtime_checkable

__all__ = ["ReleaseOrder", "Shrinkable"]


class ReleaseOrder(IntEnum):
    """When a component is asked to release memory: lower first (ties keep registration order).

    * ``PREFIX_CACHE`` -- an engine's prefix cache: free KV blocks that only serve a later
      prompt sharing a prefix; dropping one costs a recomputation of that prefix at most;
    * ``KV_TIER`` -- a CacheStore's in-memory tiers: entries spill to the tier below (the
      cold tier on disk when there is one), so they are loaded, not recomputed, on a hit;
    * ``CACHE_ENTRIES`` -- a Cache's entries (least recently used first): whatever
      computed them must run again on a miss.
    """

    PREFIX_CACHE = 100
    KV_TIER = 200
    CACHE_ENTRIES = 300


@runtime_checkable
class Shrinkable(Protocol):
    """A component that can release memory on request.

    Contract:

    * ``release_order`` places the component in the release order (a `ReleaseOrder`
      value, or any int between them);
    * `resident_bytes` is what the component's releasable part holds now (an estimate
      of its in-process bytes, pinned entries included), never negative;
    * `release` gives back memory, oldest or least used first, until it freed at least
      ``nbytes`` or has nothing left it may release; it returns the bytes freed (0 when it
      could free nothing). It never raises for lack of something to release, never drops a
      pinned entry, and never loses an entry it is documented to keep (a tier spills
      rather than drops when it has a tier below);
    * both are safe to call from any thread while the component is in use.
    """

    release_order: int

    def resident_bytes(self) -> int:
        """Bytes held by what `release` may give back (pinned entries included)."""
        ...

    def release(self, nbytes: int) -> int:
        """Free at least ``nbytes`` if possible; return the bytes freed."""
        ...
