"""ConfigStore clauses: history and rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from portfolio_core.ports.config_store import (
    DELETE,
    ConfigStore,
)
from portfolio_core.ports.errors import (
    InvalidInputError,
    NotFoundError,
    StaleVersionError,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.suite import ContractSuite


class HistoryClauses(ContractSuite[ConfigStore]):
    """History and rollback."""

    @clause("config_store.history", "history lists every version in order: what, who, when, why")
    async def test_history(self, adapter: ConfigStore) -> None:
        before = datetime.now(UTC) - timedelta(minutes=5)
        await adapter.apply({"a": 1, "b": [1]}, author="ana", reason="first")
        await adapter.apply({"a": DELETE}, author="bo", reason="second")
        await adapter.apply({"c": None})
        sets = await adapter.history()
        assert [s.version for s in sets] == [1, 2, 3]
        assert [(s.author, s.reason) for s in sets] == [
            ("ana", "first"),
            ("bo", "second"),
            ("", ""),
        ]
        assert sets[0].updates() == {"a": 1, "b": [1]}
        assert sets[1].updates() == {"a": DELETE}
        assert sets[2].updates() == {"c": None}
        assert all(s.rollback_of is None for s in sets)
        assert all(before < s.at < datetime.now(UTC) + timedelta(minutes=5) for s in sets)
        assert [s.at for s in sets] == sorted(s.at for s in sets)
        assert [s.version for s in await adapter.history(from_version=2)] == [2, 3]
        assert [s.version for s in await adapter.history(from_version=1, limit=1)] == [1]

    @clause(
        "config_store.rollback.restores",
        "rollback makes a new version whose values are exactly those of the target version",
    )
    async def test_rollback(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": 1, "b": {"x": 1}})
        await adapter.apply({"a": 2, "c": 3})
        await adapter.apply({"b": DELETE, "d": [4]})
        version = await adapter.rollback(1, author="ops", reason="bad change")
        assert version == 4
        assert dict(await adapter.read()) == {"a": 1, "b": {"x": 1}}
        last = (await adapter.history(from_version=4))[0]
        assert (last.rollback_of, last.author, last.reason) == (1, "ops", "bad change")
        assert dict(await adapter.read(version=3)) == {"a": 2, "c": 3, "d": [4]}, (
            "a rollback rewrote history"
        )
        assert await adapter.rollback(0) == 5
        assert dict(await adapter.read()) == {}
        assert await adapter.rollback(3) == 6
        assert dict(await adapter.read()) == {"a": 2, "c": 3, "d": [4]}

    @clause(
        "config_store.rollback.prefix",
        "rollback with a prefix restores the keys under it and leaves the others alone",
    )
    async def test_rollback_prefix(self, adapter: ConfigStore) -> None:
        await adapter.apply({"app.a": 1, "db.a": 1})
        await adapter.apply({"app.a": 2, "app.b": 2, "db.a": 2})
        await adapter.rollback(1, prefix="app.")
        assert dict(await adapter.read()) == {"app.a": 1, "db.a": 2}

    @clause(
        "config_store.rollback.unknown",
        "rollback to a version that never existed raises NotFoundError and writes nothing",
    )
    async def test_rollback_unknown(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": 1})
        with pytest.raises(NotFoundError):
            await adapter.rollback(2)
        with pytest.raises(InvalidInputError):
            await adapter.rollback(-1)
        assert await adapter.current_version() == 1
        assert dict(await adapter.read()) == {"a": 1}

    @clause(
        "config_store.rollback.expected_version",
        "rollback with a stale expected version raises StaleVersionError, writes nothing",
    )
    async def test_rollback_stale(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": 1})
        await adapter.apply({"a": 2})
        with pytest.raises(StaleVersionError):
            await adapter.rollback(1, expected_version=1)
        assert await adapter.get("a") == 2
        assert await adapter.rollback(1, expected_version=2) == 3
        assert await adapter.get("a") == 1
