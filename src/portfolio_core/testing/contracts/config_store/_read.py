"""ConfigStore clauses: reading: values at versions, prefixes, snapshots, argument rules."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest

from portfolio_core.ports.config_store import (
    DELETE,
    ChangeSet,
    ConfigStore,
)
from portfolio_core.ports.errors import (
    InvalidInputError,
    NotFoundError,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.suite import ContractSuite


class ReadClauses(ContractSuite[ConfigStore]):
    """Reading: values at versions, prefixes, snapshots, argument rules."""

    @clause("config_store.read.not_found", "a key without a value raises NotFoundError")
    async def test_get_missing(self, adapter: ConfigStore) -> None:
        with pytest.raises(NotFoundError):
            await adapter.get("nope")
        await adapter.apply({"gone": 1})
        await adapter.apply({"gone": DELETE})
        with pytest.raises(NotFoundError):
            await adapter.get("gone")
        assert await adapter.get("gone", version=1) == 1
        with pytest.raises(NotFoundError):
            await adapter.get("nope", version=1)  # never set, at a past version
        with pytest.raises(NotFoundError):
            await adapter.get("gone", version=2)

    @clause(
        "config_store.arguments.invalid",
        "a prefix that is not text (or holds U+0000 or a lone surrogate) and a version, "
        "from_version, limit or expected_version that is not a non-negative int raise "
        "InvalidInputError, in every operation that takes them, and write nothing",
    )
    async def test_invalid_arguments(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": 1})

        async def watch_from(prefix: Any) -> ChangeSet:
            return await anext(aiter(adapter.watch(prefix)))

        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        bad_prefixes: list[Any] = [7, None, b"a", "a\x00", "lone \udc80"]
        bad_versions: list[Any] = [-1, "1", 1.0, True]
        for bad in bad_prefixes:
            calls += [
                (f"read(prefix={bad!r})", partial(adapter.read, bad)),
                (f"watch(prefix={bad!r})", partial(watch_from, bad)),
                (f"rollback(1, prefix={bad!r})", partial(adapter.rollback, 1, prefix=bad)),
            ]
        for bad in bad_versions:
            calls += [
                (f"history(from_version={bad!r})", partial(adapter.history, from_version=bad)),
                (f"history(limit={bad!r})", partial(adapter.history, limit=bad)),
                (
                    f"apply(expected_version={bad!r})",
                    partial(adapter.apply, {"a": 2}, expected_version=bad),
                ),
                (
                    f"rollback(1, expected_version={bad!r})",
                    partial(adapter.rollback, 1, expected_version=bad),
                ),
            ]
        for name, call in calls:
            try:
                await call()
            except InvalidInputError:
                continue
            except Exception as exc:
                raise AssertionError(f"{name} raised {exc!r}, not InvalidInputError") from exc
            raise AssertionError(f"{name} was accepted")
        assert await adapter.current_version() == 1, "a refused call wrote a version"

    @clause(
        "config_store.read.at_version",
        "get and read at a past version return the values of that version; a version not yet "
        "made raises NotFoundError, a negative one InvalidInputError",
    )
    async def test_read_at_version(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": 1, "b": 1})
        await adapter.apply({"a": 2, "c": 3})
        await adapter.apply({"b": DELETE})
        assert await adapter.get("a", version=1) == 1
        assert await adapter.get("a", version=2) == 2
        with pytest.raises(NotFoundError):
            await adapter.get("c", version=1)
        snapshots = [await adapter.read(version=v) for v in range(4)]
        assert [s.version for s in snapshots] == [0, 1, 2, 3]
        assert [dict(s) for s in snapshots] == [
            {},
            {"a": 1, "b": 1},
            {"a": 2, "b": 1, "c": 3},
            {"a": 2, "c": 3},
        ]
        with pytest.raises(NotFoundError):
            await adapter.read(version=4)
        with pytest.raises(NotFoundError):
            await adapter.get("a", version=9)
        with pytest.raises(InvalidInputError):
            await adapter.read(version=-1)

    @clause("config_store.read.prefix", "read(prefix) returns exactly the keys under the prefix")
    async def test_read_prefix(self, adapter: ConfigStore) -> None:
        await adapter.apply({"app.a": 1, "app.b.c": 2, "apple": 3, "db.url": "x"})
        snap = await adapter.read("app.")
        assert snap.version == 1
        assert dict(snap) == {"app.a": 1, "app.b.c": 2}
        assert dict(await adapter.read("app")) == {"app.a": 1, "app.b.c": 2, "apple": 3}
        assert dict(await adapter.read("none.")) == {}
        assert len(await adapter.read()) == 4

    @clause("config_store.read.round_trip", "JSON values come back equal and of the same types")
    async def test_round_trip(self, adapter: ConfigStore) -> None:
        values = {
            "s": "é✓ \x00 nul inside a value",
            "i": 2**53 + 1,
            "f": 1.5,
            "t": True,
            "n": None,
            "l": [1, "a", None, [2.0]],
            "o": {"k": {"deeper": []}, "": 0},
        }
        await adapter.apply(values)
        for key, value in values.items():
            got = await adapter.get(key)
            assert got == value, (key, got)
            assert type(got) is type(value), (key, got)
        assert dict(await adapter.read()) == values

    @clause("config_store.read.snapshot", "changing a returned value does not change the store")
    async def test_snapshot(self, adapter: ConfigStore) -> None:
        await adapter.apply({"o": {"items": [1]}})
        got = await adapter.get("o")
        got["items"].append(2)
        got["new"] = 1
        snap = await adapter.read()
        with contextlib.suppress(TypeError):
            snap.values["o"]["items"].append(3)
        assert await adapter.get("o") == {"items": [1]}, "mutating a returned value changed it"
        assert dict(await adapter.read()) == {"o": {"items": [1]}}
