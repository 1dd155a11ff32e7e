"""Application code depends on a port; any adapter that satisfies it can stand behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from portfolio_core.ports import Cache


async def greet(cache: Cache, name: str) -> str:
    """Application code: it knows the Cache contract, not the technology behind it."""
    cached = await cache.get(f"greeting:{name}")
    if isinstance(cached, str):
        return cached
    greeting = f"Hello, {name}!"
    await cache.put(f"greeting:{name}", greeting, ttl=60)
    return greeting


class DictCache:
    """A hand-written adapter (TTL ignored, so it declares no ``cache.ttl`` capability)."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}

    async def get(self, key: str) -> Any | None:
        return self._items.get(key)

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._items[key] = value

    async def delete(self, key: str) -> bool:
        return self._items.pop(key, None) is not None

    async def clear(self) -> None:
        self._items.clear()

    async def exists(self, key: str) -> bool:
        return key in self._items

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return {k: self._items[k] for k in keys if k in self._items}

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        self._items.update(items)


async def main() -> None:
    cache = DictCache()
    assert isinstance(cache, Cache)  # noqa: S101  (a runtime check against the protocol)
    print(await greet(cache, "Ada"))
    print("cached:", await cache.exists("greeting:Ada"))


if __name__ == "__main__":
    asyncio.run(main())
