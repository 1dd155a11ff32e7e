"""Put and get: values round-trip, keys and values are validated."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from portfolio_core.ports.cache import MAX_KEY_LENGTH, Cache
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.cache._common import (
    BAD_KEYS,
    BAD_TTLS,
    BAD_VALUES,
    VALUES,
)
from portfolio_core.testing.suite import ContractSuite


class ValueClauses(ContractSuite[Cache]):
    """put and get: values round-trip, keys and values are validated."""

    @clause("cache.put.get", "after put, get returns a value equal to the one stored")
    @pytest.mark.parametrize("value", VALUES, ids=repr)
    async def test_put_then_get(self, adapter: Cache, value: Any) -> None:
        await adapter.put("k", copy.deepcopy(value))
        got = await adapter.get("k")
        assert got == value, f"stored {value!r}, got {got!r}"
        assert type(got) is type(value), f"stored a {type(value).__name__}, got {got!r}"

    @clause("cache.get.miss", "get of a key never stored returns None")
    async def test_get_miss(self, adapter: Cache) -> None:
        assert await adapter.get("never-stored") is None

    @clause("cache.put.overwrites", "put replaces the value already stored at a key")
    async def test_put_overwrites(self, adapter: Cache) -> None:
        await adapter.put("k", 1)
        await adapter.put("k", {"two": 2})
        assert await adapter.get("k") == {"two": 2}

    @clause(
        "cache.key.any_text",
        "any non-empty key (no U+0000) up to the maximum length is a distinct key",
    )
    @pytest.mark.parametrize(
        "key", ["a", "with space", "a:b:c", "*?[]", "ünï/../\\", "k" * MAX_KEY_LENGTH], ids=repr
    )
    async def test_key_characters(self, adapter: Cache, key: str) -> None:
        await adapter.put(key, "v")
        await adapter.put(key + "x" if len(key) < MAX_KEY_LENGTH else "other", "w")
        assert await adapter.get(key) == "v"
        assert await adapter.exists(key)

    @clause("cache.get.copy", "get never returns an object the cache still holds, nor the one put")
    async def test_values_are_not_shared(self, adapter: Cache) -> None:
        value: dict[str, Any] = {"list": [1, 2], "d": {"a": 1}}
        await adapter.put("k", value)
        value["list"].append(3)
        first = await adapter.get("k")
        assert first == {"list": [1, 2], "d": {"a": 1}}, "mutating the value put changed the cache"
        first["list"].append(4)
        first["d"]["b"] = 2
        assert await adapter.get("k") == {"list": [1, 2], "d": {"a": 1}}, (
            "mutating a value returned by get changed what the cache holds"
        )
        many = await adapter.get_many(["k"])
        many["k"]["list"].clear()
        assert await adapter.get("k") == {"list": [1, 2], "d": {"a": 1}}, (
            "mutating a value returned by get_many changed what the cache holds"
        )

    @clause("cache.value.invalid", "a value that is not JSON-compatible raises InvalidInputError")
    @pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__[:8])
    async def test_bad_value(self, adapter: Cache, value: Any) -> None:
        await adapter.put("k", "old")
        with pytest.raises(InvalidInputError):
            await adapter.put("k", value)
        assert await adapter.get("k") == "old", "a refused put changed the stored value"

    @clause("cache.key.invalid", "a bad key raises InvalidInputError on every operation")
    @pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
    async def test_bad_key(self, adapter: Cache, key: Any) -> None:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: adapter.put(key, 1),
            lambda: adapter.get(key),
            lambda: adapter.delete(key),
            lambda: adapter.exists(key),
            lambda: adapter.get_many([key]),
            lambda: adapter.put_many({key: 1}),
        ]
        for call in calls:
            with pytest.raises(InvalidInputError):
                await call()

    @clause(
        "cache.ttl.invalid", "a ttl that is not a positive finite number raises InvalidInputError"
    )
    @pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
    async def test_bad_ttl(self, adapter: Cache, ttl: Any) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.put("k", 1, ttl=ttl)
        with pytest.raises(InvalidInputError):
            await adapter.put_many({"m": 1}, ttl=ttl)
        assert await adapter.get_many(["k", "m"]) == {}, "a refused put stored something"
