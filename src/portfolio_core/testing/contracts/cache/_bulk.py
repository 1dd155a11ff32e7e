"""The bulk operations (get_many, put_many, delete_many)."""

from __future__ import annotations

from typing import Any

import pytest

from portfolio_core.ports.cache import Cache
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.suite import ContractSuite


class BulkClauses(ContractSuite[Cache]):
    """The bulk operations (get_many, put_many, delete_many)."""

    @clause("cache.get_many.hits_only", "get_many returns the hits only; misses are absent")
    async def test_get_many(self, adapter: Cache) -> None:
        await adapter.put_many({"a": 1, "b": [2]})
        got = await adapter.get_many(["a", "b", "missing", "a"])
        assert got == {"a": 1, "b": [2]}, f"got {got!r}"
        assert await adapter.get_many([]) == {}

    @clause("cache.put_many.all", "put_many stores every item")
    async def test_put_many(self, adapter: Cache) -> None:
        items = {f"k{i}": {"i": i} for i in range(20)}
        await adapter.put_many(items)
        assert await adapter.get_many(list(items)) == items

    @clause("cache.put_many.atomic_on_bad_input", "put_many with any bad item stores none of them")
    @pytest.mark.parametrize("bad", ["value", "key"])
    async def test_put_many_bad_input(self, adapter: Cache, bad: str) -> None:
        await adapter.put("a", "old")
        items: dict[Any, Any] = {"a": "new", "b": 2, "c": 3}
        if bad == "value":
            items["d"] = (1, 2)
        else:
            items[""] = 1
        with pytest.raises(InvalidInputError):
            await adapter.put_many(items)
        assert await adapter.get_many(["a", "b", "c", "d"]) == {"a": "old"}, (
            "put_many stored part of a batch it refused"
        )
