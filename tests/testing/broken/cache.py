"""Deliberately broken MemoryCache variants: each must make the Cache contract suite fail.

Every class names, in ``clause``, the clause its bug breaks.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

from portfolio_core.adapters.memory.cache import MemoryCache, _Entry
from portfolio_core.ports import current_tenant


class TtlIgnored(MemoryCache):
    clause = "cache.ttl.expires"

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        await super().put(key, value)

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        await super().put_many(items)


class DeleteIsNoop(MemoryCache):
    clause = "cache.delete.idempotent"

    async def delete(self, key: str) -> bool:
        return await self.exists(key)


class GetReturnsStoredObject(MemoryCache):
    clause = "cache.get.copy"

    def _encode(self, value: Any, ttl: float | None, now: float) -> _Entry:
        super()._encode(value, ttl, now)  # keep the validation
        return _Entry(now + ttl if ttl is not None else float("inf"), value, True)


class ClearLeaksAcrossTenants(MemoryCache):
    """clear() by one tenant empties every tenant's items."""

    clause = "cache.tenant.clear_isolated"
    tests = ("test_tenant_clear_isolated",)

    async def clear(self) -> None:
        if self.tenant_scoped and current_tenant() is not None:
            with self._lock:
                self._data.clear()
            return
        await super().clear()


class ClearLeaksAcrossNamespaces(MemoryCache):
    """clear() empties every instance, as if all namespaces shared one keyspace."""

    clause = "cache.clear.namespace"
    _instances: ClassVar[list[MemoryCache]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._instances.append(self)

    async def clear(self) -> None:
        for cache in self._instances:
            with cache._lock:
                cache._data.clear()


class GetManyReturnsMissesAsNone(MemoryCache):
    clause = "cache.get_many.hits_only"

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found = await super().get_many(keys)
        return {k: found.get(k) for k in keys}


class PutManyPartialOnBadInput(MemoryCache):
    clause = "cache.put_many.atomic_on_bad_input"

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        for key, value in items.items():
            await self.put(key, value, ttl)


class ExistsTrueAfterExpiry(MemoryCache):
    clause = "cache.ttl.exists"

    async def exists(self, key: str) -> bool:
        with self._lock:
            return any(k[1] == key for k in self._data)


class NotFailClosed(MemoryCache):
    """Scoped, but calls without a tenant share one anonymous space."""

    clause = "cache.tenant.fail_closed"

    def __init__(self, *args: Any, tenant_scoped: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # tenant_scoped is swallowed


class TenantNotInKey(MemoryCache):
    """Checks a tenant is set, but keys every tenant's items in one space."""

    clause = "cache.tenant.isolation"

    def __init__(
        self, *args: Any, tenant_scoped: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(*args, tenant_scoped=False, clock=clock)
        self._check = tenant_scoped

    async def get(self, key: str) -> Any | None:
        if self._check:
            from portfolio_core.ports import require_tenant

            require_tenant()
        return await super().get(key)


class FetchStampede(MemoryCache):
    clause = "cache.fetch.single_flight"

    async def fetch(
        self, key: str, populate: Callable[[], Awaitable[Any]], ttl: float | None = None
    ) -> Any:
        value = await self.get(key)
        if value is None:
            value = await populate()
            await self.put(key, value, ttl)
        return value


class FetchCancelCancelsOthers(MemoryCache):
    """Waiters share the population task without shielding it."""

    clause = "cache.fetch.cancellation"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    async def fetch(
        self, key: str, populate: Callable[[], Awaitable[Any]], ttl: float | None = None
    ) -> Any:
        value = await self.get(key)
        if value is not None:
            return value
        task = self._tasks.get(key)
        if task is None:

            async def run() -> Any:
                result = await populate()
                await self.put(key, result, ttl)
                return result

            task = self._tasks[key] = asyncio.ensure_future(run())
        return await task


class BadKeyAccepted(MemoryCache):
    clause = "cache.key.invalid"

    async def get(self, key: str) -> Any | None:
        if key == "" or not isinstance(key, str):
            return None
        return await super().get(key)


class NoneIsStorable(MemoryCache):
    clause = "cache.value.invalid"

    def _encode(self, value: Any, ttl: float | None, now: float) -> _Entry:
        if value is None:
            return _Entry(float("inf"), None, True)
        return super()._encode(value, ttl, now)


class KeysListExpired(MemoryCache):
    clause = "cache.enumerate.expiry"

    async def keys(self) -> list[str]:
        with self._lock:
            return [k[1] for k in self._data]


class TenantDefaultTtlIgnored(MemoryCache):
    clause = "cache.tenant.default_ttl"

    def _ttl(self, ttl: float | None) -> float | None:
        return ttl if ttl is not None else self.default_ttl


class Unbounded(MemoryCache):
    clause = "cache.bounded"

    def __init__(self, max_entries: int = 10_000, **kwargs: Any) -> None:
        super().__init__(10_000, **kwargs)


class LiveAtExactTtl(MemoryCache):
    """Expiry compared with ``<`` instead of ``<=``: an item is still live at its TTL."""

    clause = "cache.ttl.boundary"

    def _encode(self, value: Any, ttl: float | None, now: float) -> _Entry:
        entry = super()._encode(value, ttl, now)
        if ttl is not None:
            entry.expires = now + ttl + 1e-6
        return entry


class DeleteFindsItemAtExactTtl(MemoryCache):
    """delete compares expiry with >=: at exactly its TTL an item is reported present."""

    clause = "cache.ttl.boundary"

    async def delete(self, key: str) -> bool:
        k = (None, key)
        now = self._clock()
        with self._lock:
            entry = self._data.pop(k, None)
        return entry is not None and entry.expires >= now


class FractionalTtlRoundedUp(MemoryCache):
    """Rounds a ttl up to whole seconds, as a backend taking integer seconds would."""

    clause = "cache.ttl.boundary"

    def _encode(self, value: Any, ttl: float | None, now: float) -> _Entry:
        return super()._encode(value, math.ceil(ttl) if ttl is not None else None, now)


class TtlIgnoredWithoutClock(MemoryCache):
    """Ignores ttl, and its factory takes no clock: caught only by waiting in real time."""

    clause = "cache.ttl.real_time"

    def __init__(self, max_entries: int = 10_000) -> None:
        super().__init__(max_entries)

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        await super().put(key, value)

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        await super().put_many(items)


class KeysReturnsItsIndex(MemoryCache):
    """keys() hands out the list it keeps as an index, so a caller's edit changes it."""

    clause = "cache.snapshot"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._index: list[str] = []

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        await super().put_many(items, ttl)
        self._index.extend(k for k in items if k not in self._index)

    async def keys(self) -> list[str]:
        return self._index


class EvictsOneEarly(MemoryCache):
    """Off by one: makes room when the cache holds max_entries - 1 items."""

    clause = "cache.bounded.under_bound"

    def __init__(self, max_entries: int = 10_000, **kwargs: Any) -> None:
        super().__init__(max(1, max_entries - 1), **kwargs)


class DeleteAfterPutManyReportsAbsent(MemoryCache):
    """Index bookkeeping bug: delete of an item stored by put_many returns False.

    Caught by the state machine, which a bounded cache no longer weakens when the factory
    takes ``max_entries`` (the kit gives it room to spare)."""

    clause = "cache.model"
    max_examples = 400  # the machine must happen on put_many then delete: give it room

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        clock: Callable[[], float] = time.monotonic,
        tenant_scoped: bool = False,
    ) -> None:
        super().__init__(max_entries, clock=clock, tenant_scoped=tenant_scoped)
        self._from_many: set[str] = set()

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        await super().put(key, value, ttl)
        self._from_many.discard(key)

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        await super().put_many(items, ttl)
        self._from_many.update(items)

    async def delete(self, key: str) -> bool:
        present = await super().delete(key)
        return present and key not in self._from_many


class DriverErrorLeaks(MemoryCache):
    """Lets the backend's ConnectionError escape instead of UnavailableError."""

    clause = "cache.faults.unavailable"

    def _backend(self, operation: str) -> None:
        if self._faults is not None:
            self._faults(operation)


class WritesBeforeReachingBackend(MemoryCache):
    """put_many stores the items, then finds the backend gone: a half-done write."""

    clause = "cache.faults.unavailable"

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        faults, self._faults = self._faults, None
        try:
            await super().put_many(items, ttl)
        finally:
            self._faults = faults
        self._backend("put_many")


class StatsCountHitsAsMisses(MemoryCache):
    """get_many's hits are counted as misses."""

    clause = "cache.stats"

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found = await super().get_many(keys)
        hits = sum(1 for k in keys if k in found)
        with self._lock:
            self._hits -= hits
            self._misses += hits
        return found


VARIANTS: list[type[MemoryCache]] = [
    TtlIgnored,
    DeleteIsNoop,
    GetReturnsStoredObject,
    ClearLeaksAcrossTenants,
    ClearLeaksAcrossNamespaces,
    GetManyReturnsMissesAsNone,
    PutManyPartialOnBadInput,
    ExistsTrueAfterExpiry,
    NotFailClosed,
    TenantNotInKey,
    FetchStampede,
    FetchCancelCancelsOthers,
    BadKeyAccepted,
    NoneIsStorable,
    KeysListExpired,
    TenantDefaultTtlIgnored,
    Unbounded,
    LiveAtExactTtl,
    DeleteFindsItemAtExactTtl,
    FractionalTtlRoundedUp,
    TtlIgnoredWithoutClock,
    KeysReturnsItsIndex,
    EvictsOneEarly,
    DeleteAfterPutManyReportsAbsent,
    DriverErrorLeaks,
    WritesBeforeReachingBackend,
    StatsCountHitsAsMisses,
]
