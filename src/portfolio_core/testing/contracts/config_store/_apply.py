"""ConfigStore clauses: applying: versions, expected versions, validation, concurrent applies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfolio_core.ports.config_store import (
    DELETE,
    MAX_CONFIG_KEY_LENGTH,
    ConfigStore,
)
from portfolio_core.ports.errors import (
    InvalidInputError,
    StaleVersionError,
)
from portfolio_core.ports.values import MAX_VALUE_DEPTH
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.concurrency import one_winner, run_concurrently
from portfolio_core.testing.suite import ContractSuite


class ApplyClauses(ContractSuite[ConfigStore]):
    """Applying: versions, expected versions, validation, concurrent applies."""

    @clause("config_store.apply.versions", "each apply makes exactly one new version, +1")
    async def test_versions(self, adapter: ConfigStore) -> None:
        assert await adapter.current_version() == 0
        assert await adapter.apply({"a": 1}) == 1
        assert await adapter.apply({"a": 2, "b": "x"}) == 2
        assert await adapter.apply({"a": DELETE}, expected_version=2) == 3
        assert await adapter.current_version() == 3
        assert (await adapter.read()).values == {"b": "x"}

    @clause(
        "config_store.apply.expected_version",
        "a stale expected version raises StaleVersionError with the actual one, writes nothing",
    )
    @pytest.mark.parametrize("expected", [0, 1, 3])
    async def test_stale_expected_version(self, adapter: ConfigStore, expected: int) -> None:
        await adapter.apply({"a": 1})
        await adapter.apply({"a": 2})
        with pytest.raises(StaleVersionError) as info:
            await adapter.apply({"a": 99, "b": 1}, expected_version=expected)
        assert info.value.actual == 2, f"actual reported {info.value.actual}, is 2"
        assert await adapter.current_version() == 2, "a refused apply made a version"
        assert (await adapter.read()).values == {"a": 2}, "a refused apply wrote values"

    @clause(
        "config_store.apply.invalid",
        "bad input raises InvalidInputError naming the key and writes nothing of the batch",
    )
    @pytest.mark.parametrize(
        "case",
        [
            "empty_batch",
            "not_mapping",
            "key_not_str",
            "empty_key",
            "nul_key",
            "surrogate_key",
            "long_key",
            "not_json",
            "nan",
            "tuple",
            "int_dict_key",
            "too_deep",
            "oversized",
            "surrogate_value",
            "author_not_str",
        ],
    )
    async def test_invalid_batch(self, adapter: ConfigStore, case: str) -> None:
        await adapter.apply({"keep": 1})
        limit = int(getattr(adapter, "max_value_bytes", 1_048_576))
        deep: Any = 1
        for _ in range(MAX_VALUE_DEPTH + 1):
            deep = [deep]
        cases: dict[str, dict[Any, Any]] = {
            "key_not_str": {1: "x"},
            "empty_key": {"": 1},
            "nul_key": {"a\x00b": 1},
            "surrogate_key": {"a\udc80": 1},
            "long_key": {"k" * (MAX_CONFIG_KEY_LENGTH + 1): 1},
            "not_json": {"bad": object()},
            "nan": {"bad": float("nan")},
            "tuple": {"bad": [1, (2, 3)]},
            "int_dict_key": {"bad": {1: "one"}},
            "too_deep": {"bad": deep},
            "oversized": {"bad": "y" * (limit + 1)},
            "surrogate_value": {"bad": "a\udc80"},
        }
        bad = cases.get(case, {})
        kwargs: dict[str, Any] = {}
        changes: Any = {"good": 1, **bad}
        if case == "empty_batch":
            changes = {}
        elif case == "not_mapping":
            changes = [("good", 1)]
        elif case == "author_not_str":
            kwargs["author"] = 7
        with pytest.raises(InvalidInputError) as info:
            await adapter.apply(changes, **kwargs)
        if bad and case not in ("key_not_str",):
            assert info.value.field == next(iter(bad)), (
                f"{case}: the error names {info.value.field!r}, not the key"
            )
        assert await adapter.current_version() == 1, f"{case}: a refused batch made a version"
        assert (await adapter.read()).values == {"keep": 1}, f"{case}: a refused batch wrote"

    @clause("config_store.apply.concurrent", "of N concurrent applies at one version, one wins")
    async def test_concurrent_one_winner(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": 0})
        results = await run_concurrently(
            8, lambda i: adapter.apply({"a": i, f"w{i}": i}, expected_version=1)
        )
        winner = one_winner(results, StaleVersionError)
        assert winner == 2
        values = (await adapter.read()).values
        won = [k for k in values if k.startswith("w")]
        assert len(won) == 1, f"batches mixed: {values}"
        assert values["a"] == values[won[0]], f"batches mixed: {values}"

    @clause(
        "config_store.apply.race",
        "racing writers that retry on conflicts lose nothing: versions 1..N, every write kept",
    )
    async def test_writers_race(self, adapter: ConfigStore) -> None:
        per_writer = 4

        async def writer(w: int) -> int:
            done = 0
            for _ in range(400):
                if done == per_writer:
                    break
                current = await adapter.current_version()
                try:
                    await adapter.apply({f"w{w}.{done}": done}, expected_version=current)
                    done += 1
                except StaleVersionError:
                    await asyncio.sleep(0)
            return done

        results = await run_concurrently(6, writer)
        assert results == [per_writer] * 6, results
        assert await adapter.current_version() == 6 * per_writer
        values = (await adapter.read()).values
        assert len(values) == 6 * per_writer, values
        versions = [c.version for c in await adapter.history()]
        assert versions == list(range(1, 6 * per_writer + 1)), versions
