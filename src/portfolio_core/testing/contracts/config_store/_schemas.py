"""ConfigStore clauses: schemas per key prefix."""

from __future__ import annotations

import pytest

from portfolio_core.ports.config_store import (
    DELETE,
    ConfigStore,
    ConfigStoreCapability,
)
from portfolio_core.ports.errors import (
    InvalidInputError,
)
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.contracts.config_store._common import (
    KIT_SCHEMAS,
)
from portfolio_core.testing.loop import accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.suite import ContractSuite, Factory


class SchemaClauses(ContractSuite[ConfigStore]):
    """Schemas per key prefix."""

    @clause(
        "config_store.schema",
        "a value its prefix's schema rejects raises InvalidInputError naming the key and the "
        "reason, before anything of the batch is applied",
    )
    @requires(ConfigStoreCapability.SCHEMAS)
    async def test_schema(self, make_adapter: Factory) -> None:
        if not accepts_keyword(make_adapter, "schemas"):
            pytest.skip("the factory does not accept schemas=, so the kit cannot register one")
        store: ConfigStore = await open_adapter(make_adapter, schemas=KIT_SCHEMAS)
        try:
            assert await store.apply({"limits.http": {"timeout": 2.5}, "free": "x"}) == 1
            with pytest.raises(InvalidInputError) as info:
                await store.apply({"other": 1, "limits.db": {"timeout": -1}})
            assert info.value.field == "limits.db", info.value.field
            assert "limits.db" in str(info.value), info.value
            assert "timeout" in str(info.value), f"the reason is not named: {info.value}"
            with pytest.raises(InvalidInputError) as info:
                await store.apply({"limits.db": {"timeout": 1, "extra": True}})
            assert info.value.field == "limits.db"
            assert await store.current_version() == 1, "a rejected batch was applied"
            assert dict(await store.read()) == {"limits.http": {"timeout": 2.5}, "free": "x"}
            assert await store.apply({"limits.http": DELETE}) == 2, "a schema refused a delete"
        finally:
            await close_adapter(store)
