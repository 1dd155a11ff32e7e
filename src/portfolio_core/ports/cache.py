"""Cache: a key-value store with optional per-item expiry.

Contract
--------
* Keys are non-empty strings of at most 512 characters without the NUL character U+0000
  (PostgreSQL text cannot hold it, so every adapter refuses it); values are JSON-compatible
  (``None``, bool, int, float, str, lists and string-keyed dicts of those, the stored-value
  rule of `portfolio_core.ports.values`: at most ``MAX_VALUE_DEPTH`` containers deep, no
  string that is not Unicode text), except that ``None`` itself cannot be stored, so that
  ``get`` returning ``None`` always means a miss. Anything else (a tuple, a non-str key, a
  lone surrogate in a key or value) raises
  [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] and stores nothing. Strings
  inside
  values may contain U+0000; they round-trip unchanged.
* Stored data that fails the adapter's integrity check raises
  [CorruptDataError][portfolio_core.ports.errors.CorruptDataError]: a damaged item is never returned
  altered, nor reported as a miss.
* ``put`` overwrites; after it returns, ``get`` of that key returns an equal value until the
  TTL passes, the key is deleted or evicted, or the cache is cleared. ``ttl`` is in seconds:
  a positive, finite ``int`` or ``float`` (fractions count: ``0.25`` is a quarter of a
  second); ``None`` means no expiry. Anything else (``0``, a negative number, NaN, ``inf``,
  ``True``/``False``, a string) raises
  [InvalidInputError][portfolio_core.ports.errors.InvalidInputError]
  and stores nothing. An item put at time ``t`` is live strictly before ``t + ttl`` and
  expired from that instant on. An expired item is absent for every operation, whether or
  not it has been swept yet: ``get`` misses, ``exists`` is false, ``delete`` returns
  ``False``, ``keys``/``count`` leave it out.
* ``get`` returns a value equal to the one stored, never the same mutable object (callers
  cannot corrupt the cache by mutating a result).
* ``delete`` is idempotent and returns whether the key was present. ``clear`` removes every
  item of this adapter's namespace (and only the current tenant's, when tenant scoped).
* ``get_many`` returns only the hits, as a dict; ``put_many`` stores all items or, on error,
  raises before storing any of them when the error is bad input. Every returned collection
  (``get_many``'s dict, ``keys()``'s list) is new: the caller may mutate it.
* Bounded adapters may evict items to respect their size; eviction is never reported as an
  error. Below its bound a bounded adapter evicts nothing and behaves like an unbounded one.
  Keys containing the adapter's own separators (``:``, ``/``) are distinct keys like any
  other. An adapter that declares ``TENANT_SCOPED`` prefixes every key with the current
  tenant and raises [TenantRequiredError][portfolio_core.ports.errors.TenantRequiredError] when none
  is set.
  No sequence of calls made under one tenant can read, list, count, delete or clear another
  tenant's items. A tenant-scoped adapter uses the current tenant's ``cache.default_ttl``
  configuration override (seconds) when ``put`` is given no ``ttl``.
* A backend that cannot be reached (a lost connection, a server that is down) raises
  [UnavailableError][portfolio_core.ports.errors.UnavailableError], never the driver's own
  exception,
  and a write that raises it changes nothing; once the backend is back the adapter serves
  calls again without being rebuilt.
* Adapters that own expiry take an injectable ``clock`` (seconds). Adapters whose items
  survive a restart default to wall-clock time; in-process ones to ``time.monotonic``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Cache",
    "CacheCapability",
    "CacheStats",
    "Codec",
    "EnumerableCache",
    "FetchingCache",
    "MAX_KEY_LENGTH",
]

MAX_KEY_LENGTH = 512


class CacheCapability(StrEnum):
    """Optional parts of the Cache port."""

    TTL = "cache.ttl"
    """Honours ``ttl`` on ``put``/``put_many``."""
    PERSISTENT = "cache.persistent"
    """Items survive a restart of the process."""
    SHARED = "cache.shared"
    """Several processes see the same items."""
    TENANT_SCOPED = "cache.tenant_scoped"
    """Keys are isolated per tenant; calls without a tenant fail closed."""
    BOUNDED = "cache.bounded"
    """Holds at most a configured number of items, evicting by policy."""
    FETCH = "cache.fetch"
    """Offers ``fetch(key, populate)`` that populates each missing key once under concurrency."""
    ENUMERATE = "cache.enumerate"
    """Offers ``keys()`` and ``count()`` over the namespace (current tenant only if scoped)."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters since the adapter was created, for adapters offering ``stats()``.

    ``hits``/``misses``: each ``get`` and each key of ``get_many`` that found a live item or
    not; ``evictions``: items removed to respect the bound (never by expiry, ``delete`` or
    ``clear``); ``size``: the items held now (possibly counting expired ones not yet swept).
    """

    hits: int
    misses: int
    evictions: int
    size: int


@runtime_checkable
class Codec(Protocol):
    """Turns a cache value into bytes and back. ``decode(encode(v)) == v`` for valid values.

    ``encode`` raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] for a value
    it
    cannot represent. Shared caches must not use a codec that can execute code on decode
    (such as pickle): anyone who can write to the cache could then run code in every reader.
    """

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


@runtime_checkable
class Cache(Protocol):
    """An async key-value cache; see the module docstring for the contract."""

    async def get(self, key: str) -> Any | None:
        """The value stored at ``key``, or ``None`` when absent or expired."""
        ...

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` at ``key``, expiring after ``ttl`` seconds when given."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it was present. Idempotent."""
        ...

    async def clear(self) -> None:
        """Remove every item in this adapter's namespace (current tenant only if scoped)."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether ``get(key)`` would return a value now."""
        ...

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The hits among ``keys`` (misses are absent from the result)."""
        ...

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        """Store every item; bad input in any item stores none of them."""
        ...


@runtime_checkable
class FetchingCache(Cache, Protocol):
    """A cache that fills misses itself, once per key (capability ``cache.fetch``)."""

    async def fetch(
        self, key: str, populate: Callable[[], Awaitable[Any]], ttl: float | None = None
    ) -> Any:
        """The value at ``key``; on a miss, await ``populate()`` and store its result.

        Concurrent callers for the same missing key share one ``populate`` call (no
        stampede). A caller that is cancelled while waiting does not cancel the others nor
        the population; if ``populate`` raises, every waiter gets the error, nothing is
        stored, and the next call tries again. A ``None`` result is returned, not stored.
        """
        ...


@runtime_checkable
class EnumerableCache(Cache, Protocol):
    """A cache that can list and count its live keys (capability ``cache.enumerate``)."""

    async def keys(self) -> list[str]:
        """The live (unexpired) keys of this namespace, current tenant only when scoped."""
        ...

    async def count(self) -> int:
        """``len(await keys())``, possibly computed without listing."""
        ...
