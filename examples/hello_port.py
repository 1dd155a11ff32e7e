"""Application code depends on a port; any adapter that satisfies it can stand behind it."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from portfolio_core.ports import Cache, CacheCapability, declare
from portfolio_core.ports.validation import check_cache_key, check_json_value, check_ttl


async def greet(cache: Cache, name: str) -> str:
    """Application code: it knows the Cache contract, not the technology behind it."""
    cached = await cache.get(f"greeting:{name}")
    if isinstance(cached, str):
        return cached
    greeting = f"Hello, {name}!"
    await cache.put(f"greeting:{name}", greeting, ttl=60)
    return greeting


class DictCache:
    """A hand-written adapter that honours the whole Cache contract (the conformance kit
    checks it): the port's own validation helpers refuse what the contract refuses, values
    are copied in and out, and items expire after their TTL on an injectable clock."""

    capabilities = declare(CacheCapability.TTL)

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._items: dict[str, tuple[Any, float | None]] = {}  # key -> (value, expires at)

    def _live(self, key: str) -> tuple[Any, float | None] | None:
        found = self._items.get(check_cache_key(key))
        if found is not None and found[1] is not None and self._clock() >= found[1]:
            del self._items[key]  # expired: never returned
            return None
        return found

    def _entry(self, value: Any, ttl: float | None) -> tuple[Any, float | None]:
        check_json_value(value)
        seconds = check_ttl(ttl)
        return copy.deepcopy(value), None if seconds is None else self._clock() + seconds

    async def get(self, key: str) -> Any | None:
        found = self._live(key)
        return None if found is None else copy.deepcopy(found[0])

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._items[check_cache_key(key)] = self._entry(value, ttl)

    async def delete(self, key: str) -> bool:
        found = self._live(key)
        self._items.pop(key, None)
        return found is not None

    async def clear(self) -> None:
        self._items.clear()

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return {k: copy.deepcopy(v[0]) for k in keys if (v := self._live(k)) is not None}

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        # check everything before storing anything: bad input stores nothing
        entries = {check_cache_key(k): self._entry(v, ttl) for k, v in items.items()}
        self._items.update(entries)


async def main() -> None:
    cache = DictCache()
    assert isinstance(cache, Cache)  # noqa: S101  (a runtime check against the protocol)
    print(await greet(cache, "Ada"))
    print("cached:", await cache.exists("greeting:Ada"))


if __name__ == "__main__":
    asyncio.run(main())
