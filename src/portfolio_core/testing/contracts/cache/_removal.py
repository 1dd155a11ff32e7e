"""Delete, exists and clear."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from portfolio_core.ports.cache import Cache
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.suite import ContractSuite


class RemovalClauses(ContractSuite[Cache]):
    """delete, exists and clear."""

    @clause("cache.delete.idempotent", "delete removes the key, returns whether it was present")
    async def test_delete(self, adapter: Cache) -> None:
        await adapter.put("k", 1)
        await adapter.put("other", 2)
        assert await adapter.delete("k") is True
        assert await adapter.get("k") is None
        assert not await adapter.exists("k")
        assert await adapter.delete("k") is False
        assert await adapter.get("other") == 2, "delete removed another key"

    @clause("cache.exists", "exists is true exactly when get would return a value")
    async def test_exists(self, adapter: Cache) -> None:
        assert await adapter.exists("k") is False
        await adapter.put("k", 0)
        assert await adapter.exists("k") is True
        await adapter.put("f", False)
        assert await adapter.exists("f") is True

    @clause("cache.clear", "clear removes every item of the adapter")
    async def test_clear(self, adapter: Cache) -> None:
        await adapter.put_many({"a": 1, "b": 2})
        await adapter.clear()
        assert await adapter.get_many(["a", "b"]) == {}
        await adapter.put("a", 3)
        assert await adapter.get("a") == 3, "the cache is unusable after clear"

    @clause(
        "cache.clear.namespace",
        "clear and delete leave another adapter's items alone (factories give each a namespace)",
    )
    async def test_clear_is_confined(
        self, adapter: Cache, new_adapter: Callable[[], Awaitable[Cache]]
    ) -> None:
        other = await new_adapter()
        await other.put_many({"k": "other", "o": 1})
        await adapter.put("k", "mine")
        await adapter.delete("o")
        await adapter.clear()
        assert await other.get_many(["k", "o"]) == {"k": "other", "o": 1}, (
            "clear or delete on one adapter removed another adapter's items"
        )
