"""In-process Cache: LRU, LFU or time-aware LRU eviction, per-item TTL, thread and asyncio
safe, with single-flight ``fetch``. The reference adapter of the Cache port."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, ItemsView, Iterator, Mapping, Sequence
from heapq import heapify, heappop, heappush
from typing import Any, ClassVar, Literal

import cachetools
from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.backend import reach_backend
from portfolio_core.adapters._shared.cache_keys import (
    check_items,
    check_key,
    check_ttl,
    scope,
    tenant_ttl,
)
from portfolio_core.adapters._shared.codec import JsonCodec, check_json_value
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.ports.cache import MAX_KEY_LENGTH, CacheCapability, CacheStats, Codec
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import InvalidInputError, UnavailableError
from portfolio_core.ports.shrinkable import ReleaseOrder
from portfolio_core.ports.tenant import require_tenant

__all__ = ["MemoryCache", "MemoryCacheConfig"]

Policy = Literal["lru", "lfu", "ttl"]
_Key = tuple[str | None, str]
_INF = float("inf")


class _Entry:
    """What the policy's mapping holds: expiry (clock seconds) and the encoded value.

    Immutable scalars (str, int, float, bool) are kept as they are when the codec is the
    default JSON one; everything else is stored encoded, so ``get`` never hands out a
    mutable object the cache also holds.
    """

    __slots__ = ("expires", "payload", "raw")

    def __init__(self, expires: float, payload: Any, raw: bool) -> None:
        self.expires = expires
        self.payload = payload
        self.raw = raw


class MemoryCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_entries: int = Field(default=10_000, gt=0)
    policy: Policy = "lru"
    default_ttl: float | None = Field(default=None, gt=0)
    namespace: str = "default"
    tenant_scoped: bool = False


def _counting(base: type[cachetools.Cache[_Key, _Entry]]) -> Any:
    class Counting(base):  # type: ignore[valid-type,misc]  # dynamic subclass of a policy
        evictions = 0

        def popitem(self) -> tuple[_Key, _Entry]:
            item: tuple[_Key, _Entry] = super().popitem()
            self.evictions += 1
            return item

    return Counting


class _TimeAwareLRU:
    """The ``ttl`` policy's mapping of keys to entries; callers hold the cache's lock.

    Recency is least-recently-used over reads and writes. When a new key needs room, every
    expired item is dropped first, and a live item (the least recently used) is evicted and
    counted only if the mapping is still full. ``len`` counts live items only. Iteration and
    ``items()`` may include expired items and do not count as uses.
    """

    __slots__ = ("_clock", "_deadlines", "_items", "evictions", "maxsize")

    def __init__(self, maxsize: int, clock: Callable[[], float]) -> None:
        self.maxsize = maxsize
        self.evictions = 0
        self._clock = clock
        self._items: OrderedDict[_Key, _Entry] = OrderedDict()
        # a heap of (expires, key) for the items that expire; records of items since
        # overwritten, deleted or evicted stay until popped or compacted away
        self._deadlines: list[tuple[float, _Key]] = []

    def __getitem__(self, k: _Key) -> _Entry:
        entry = self._items[k]
        self._items.move_to_end(k)
        return entry

    def get(self, k: _Key) -> _Entry | None:
        entry = self._items.get(k)
        if entry is not None:
            self._items.move_to_end(k)
        return entry

    def __setitem__(self, k: _Key, entry: _Entry) -> None:
        items = self._items
        if len(items) >= self.maxsize and k not in items:
            self._make_room()
        items[k] = entry
        items.move_to_end(k)
        if entry.expires != _INF:
            deadlines = self._deadlines
            heappush(deadlines, (entry.expires, k))
            if len(deadlines) > 2 * len(items) + 8:
                self._compact()

    def __delitem__(self, k: _Key) -> None:
        del self._items[k]

    def pop(self, k: _Key, default: _Entry | None = None) -> _Entry | None:
        return self._items.pop(k, default)

    def clear(self) -> None:
        self._items.clear()
        self._deadlines.clear()

    def __iter__(self) -> Iterator[_Key]:
        return iter(self._items)

    def items(self) -> ItemsView[_Key, _Entry]:
        return self._items.items()

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._items)

    def _expire(self, now: float) -> None:
        items = self._items
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            k = heappop(deadlines)[1]
            entry = items.get(k)
            if entry is not None and entry.expires <= now:
                del items[k]

    def _make_room(self) -> None:
        self._expire(self._clock())
        if len(self._items) >= self.maxsize:
            self._items.popitem(last=False)
            self.evictions += 1

    def _compact(self) -> None:
        live = [(e.expires, k) for k, e in self._items.items() if e.expires != _INF]
        heapify(live)
        self._deadlines = live


#: what an entry costs beyond its key's and payload's own objects: the entry object, the key
#: tuple, and the mapping's slots (an estimate)
_ENTRY_OVERHEAD = sys.getsizeof(_Entry(0.0, None, True)) + sys.getsizeof((None, "")) + 100


def _entry_bytes(k: _Key, entry: _Entry) -> int:
    return _ENTRY_OVERHEAD + sys.getsizeof(k[1]) + sys.getsizeof(entry.payload)


def _peek(data: Any) -> list[tuple[_Key, _Entry]]:
    """The mapping's items without counting a use (cachetools' ``__getitem__`` of the LRU
    and LFU policies would reorder them)."""
    if isinstance(data, _TimeAwareLRU):
        return list(data.items())
    return [(k, cachetools.Cache.__getitem__(data, k)) for k in list(data)]


_POLICIES: dict[str, Any] = {
    "lru": _counting(cachetools.LRUCache),
    "lfu": _counting(cachetools.LFUCache),
    "ttl": _TimeAwareLRU,
}


class MemoryCache(Configurable):
    """A bounded in-process cache (``max_entries`` items, evicted by ``policy``).

    ``policy`` is ``"lru"``, ``"lfu"`` or ``"ttl"`` (time-aware LRU: expired items are
    dropped before live ones are evicted). Every policy honours per-item TTLs; an expired
    item is never returned. One lock guards the policy's mapping (which is not
    thread-safe); it is never held across an ``await``, so the cache is safe to share
    between threads and event loops. ``namespace`` only labels the instance: each instance
    is its own store. Values go through ``codec`` (strict JSON by default). ``faults`` is a
    hook the conformance kit uses to simulate an unreachable backend (see
    `portfolio_core.testing.faults`); it is called before every operation touches the
    store, and what it raises becomes UnavailableError.
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        CacheCapability.TTL,
        CacheCapability.BOUNDED,
        CacheCapability.FETCH,
        CacheCapability.ENUMERATE,
        CacheCapability.TENANT_SCOPED,
    )
    config_model: ClassVar[type[BaseModel]] = MemoryCacheConfig
    release_order: ClassVar[int] = ReleaseOrder.CACHE_ENTRIES

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        policy: Policy = "lru",
        default_ttl: float | None = None,
        namespace: str = "default",
        tenant_scoped: bool = False,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.monotonic,
        faults: Callable[[str], None] | None = None,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise InvalidInputError("max_entries must be a positive int", field="max_entries")
        if policy not in _POLICIES:
            raise InvalidInputError(f"unknown policy {policy!r}", field="policy")
        self.max_entries = max_entries
        self.policy = policy
        self.default_ttl = check_ttl(default_ttl)
        self.namespace = namespace
        self.tenant_scoped = tenant_scoped
        self._codec: Codec = codec if codec is not None else JsonCodec()
        self._raw_ok = codec is None or type(codec) is JsonCodec
        self._clock = clock
        self._faults = faults
        cls = _POLICIES[policy]
        if policy == "ttl":
            self._data = cls(max_entries, clock)
        else:
            self._data = cls(maxsize=max_entries)
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._inflight: dict[_Key, concurrent.futures.Future[_Entry | None]] = {}

    def __repr__(self) -> str:
        return (
            f"MemoryCache(max_entries={self.max_entries}, policy={self.policy!r}, "
            f"namespace={self.namespace!r}, tenant_scoped={self.tenant_scoped})"
        )

    # -- internals -------------------------------------------------------------------------

    def _encode(self, value: Any, ttl: float | None, now: float) -> _Entry:
        expires = now + ttl if ttl is not None else _INF
        t = type(value)
        if (t is str or t is int or t is bool) and self._raw_ok:
            if t is str and not value.isascii():
                check_json_value(value)  # rejects lone surrogates
            return _Entry(expires, value, True)
        if self._raw_ok and type(value) is float:
            check_json_value(value)  # rejects NaN / infinities
            return _Entry(expires, value, True)
        if value is None:
            raise InvalidInputError("None cannot be stored in a cache", field="value")
        return _Entry(expires, self._codec.encode(value), False)

    def _decode(self, entry: _Entry) -> Any:
        return entry.payload if entry.raw else self._codec.decode(entry.payload)

    def _ttl(self, ttl: float | None) -> float | None:
        ttl = tenant_ttl(check_ttl(ttl), self.tenant_scoped)
        return ttl if ttl is not None else self.default_ttl

    def _backend(self, operation: str) -> None:
        """Where a networked cache would reach its server: a fault hook given as ``faults``
        (the conformance kit's) may raise here. An unreachable backend (``OSError``) is
        UnavailableError; nothing has been changed yet."""
        reach_backend(self._faults, operation, what="cache", port="cache")

    def _lookup(self, k: _Key, now: float) -> _Entry | None:
        """Live entry at ``k`` (lock held); drops it when expired."""
        entry: _Entry | None = self._data.get(k)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._data[k]
            return None
        return entry

    # -- the port --------------------------------------------------------------------------

    async def get(self, key: str) -> Any | None:
        # the hot path: checks inlined (same rules as check_key / scope; non-ASCII keys
        # take check_key's text check)
        if (
            type(key) is not str
            or not 0 < len(key) <= MAX_KEY_LENGTH
            or "\x00" in key
            or not key.isascii()
        ):
            check_key(key)
        k = (require_tenant().tenant_id if self.tenant_scoped else None, key)
        if self._faults is not None:
            self._backend("get")
        now = self._clock()
        with self._lock:
            try:
                entry: _Entry = self._data[k]
            except KeyError:
                self._misses += 1
                return None
            if entry.expires <= now:
                del self._data[k]
                self._misses += 1
                return None
            self._hits += 1
        return entry.payload if entry.raw else self._codec.decode(entry.payload)

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        if (
            type(key) is not str
            or not 0 < len(key) <= MAX_KEY_LENGTH
            or "\x00" in key
            or not key.isascii()
        ):
            check_key(key)
        k = (require_tenant().tenant_id if self.tenant_scoped else None, key)
        ttl = self.default_ttl if ttl is None and not self.tenant_scoped else self._ttl(ttl)
        entry = self._encode(value, ttl, self._clock())
        if self._faults is not None:
            self._backend("put")
        with self._lock:
            self._data[k] = entry

    async def delete(self, key: str) -> bool:
        k = (scope(self.tenant_scoped), check_key(key))
        self._backend("delete")
        now = self._clock()
        with self._lock:
            entry = self._data.pop(k, None)
        return entry is not None and entry.expires > now

    async def clear(self) -> None:
        tenant = scope(self.tenant_scoped)
        self._backend("clear")
        with self._lock:
            if not self.tenant_scoped:
                self._data.clear()
                return
            for k in [k for k in self._data if k[0] == tenant]:
                del self._data[k]

    async def exists(self, key: str) -> bool:
        k = (scope(self.tenant_scoped), check_key(key))
        self._backend("exists")
        now = self._clock()
        with self._lock:
            return self._lookup(k, now) is not None

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        tenant = scope(self.tenant_scoped)
        if isinstance(keys, str):
            raise InvalidInputError("get_many takes a sequence of keys, not a str", field="keys")
        wanted = [check_key(key) for key in keys]
        self._backend("get_many")
        now = self._clock()
        found: dict[str, _Entry] = {}
        with self._lock:
            for key in wanted:
                entry = self._lookup((tenant, key), now)
                if entry is None:
                    self._misses += 1
                else:
                    self._hits += 1
                    found[key] = entry
        return {key: self._decode(entry) for key, entry in found.items()}

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        tenant = scope(self.tenant_scoped)
        check_items(items)
        ttl = self._ttl(ttl)
        now = self._clock()
        entries = [((tenant, key), self._encode(value, ttl, now)) for key, value in items.items()]
        self._backend("put_many")
        with self._lock:
            for k, entry in entries:
                self._data[k] = entry

    # -- optional parts ----------------------------------------------------------------------

    async def keys(self) -> list[str]:
        tenant = scope(self.tenant_scoped)
        self._backend("keys")
        now = self._clock()
        with self._lock:
            # peeked: listing the keys is not a use of each (it would reorder the LRU)
            return [k[1] for k, e in _peek(self._data) if k[0] == tenant and e.expires > now]

    async def count(self) -> int:
        return len(await self.keys())

    # -- memory ----------------------------------------------------------------------------

    def resident_bytes(self) -> int:
        """An estimate of the bytes the entries hold (keys, payloads, bookkeeping), expired
        ones not yet dropped included."""
        with self._lock:
            return sum(_entry_bytes(k, e) for k, e in _peek(self._data))

    def release(self, nbytes: int) -> int:
        """Drop expired entries, then evict entries in the policy's order (least recently
        used first for ``lru`` and ``ttl``, least frequently used for ``lfu``) until the
        estimated bytes dropped reach ``nbytes`` or the cache is empty; returns them.
        Evictions count in ``stats().evictions``; a dropped key is a miss afterwards."""
        freed = 0
        now = self._clock()
        with self._lock:
            data = self._data
            for k, entry in _peek(data):
                if entry.expires <= now:
                    del data[k]
                    freed += _entry_bytes(k, entry)
            while freed < nbytes and len(data):
                if isinstance(data, _TimeAwareLRU):
                    k, entry = data._items.popitem(last=False)
                    data.evictions += 1
                else:
                    k, entry = data.popitem()
                freed += _entry_bytes(k, entry)
        return freed

    def stats(self) -> CacheStats:
        """Hits, misses and size evictions since creation, and the items held (which may
        include expired ones not yet dropped; `count()` counts live items only)."""
        with self._lock:
            return CacheStats(self._hits, self._misses, self._data.evictions, len(self._data))

    async def fetch(
        self, key: str, populate: Callable[[], Awaitable[Any]], ttl: float | None = None
    ) -> Any:
        """The value at ``key``, populating a miss once however many callers wait for it.

        The first caller runs ``populate`` in a task of its own event loop; every other
        caller (in any task, thread or loop) waits on the same result. Waiters are shielded:
        cancelling one cancels neither the population nor the other waiters. The key is
        released when ``populate`` finishes, whether it returned, raised or was cancelled.
        Every caller gets its own copy of the value (as from ``get``): mutating one caller's
        result changes neither another's nor the cached entry.
        """
        k = (scope(self.tenant_scoped), check_key(key))
        ttl = self._ttl(ttl)
        value = await self.get(key)
        if value is not None:
            return value
        with self._lock:
            shared = self._inflight.get(k)
            owner = shared is None
            if shared is None:
                shared = concurrent.futures.Future()
                self._inflight[k] = shared
        if owner:
            task = asyncio.get_running_loop().create_task(self._populate(k, populate, ttl, shared))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        entry = await asyncio.shield(asyncio.wrap_future(shared))
        return None if entry is None else self._decode(entry)

    _background: ClassVar[set[asyncio.Task[None]]] = set()

    async def _populate(
        self,
        k: _Key,
        populate: Callable[[], Awaitable[Any]],
        ttl: float | None,
        shared: concurrent.futures.Future[_Entry | None],
    ) -> None:
        # waiters share the encoded entry, never the value object: each decodes its own copy
        try:
            value = await populate()
            entry = None if value is None else self._encode(value, ttl, self._clock())
            if entry is not None:
                with self._lock:
                    self._data[k] = entry
        except asyncio.CancelledError:
            shared.set_exception(UnavailableError("the population of this key was cancelled"))
            raise
        except BaseException as exc:
            shared.set_exception(exc)
        else:
            shared.set_result(entry)
        finally:
            with self._lock:
                if self._inflight.get(k) is shared:
                    del self._inflight[k]
