"""Contract suite of the ConfigStore port (async, stateful), with its state machine.

Every test states one clause of
[portfolio_core.ports.config_store][portfolio_core.ports.config_store]. The state machine
(`ConfigStoreMachine`) drives the adapter beside a pure model written from the port's
docstring: a list of whole states, one per version, nothing borrowed from an adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule
from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.ports.config_store import (
    DELETE,
    MAX_CONFIG_KEY_LENGTH,
    ChangeSet,
    ConfigStore,
    ConfigStoreCapability,
)
from portfolio_core.ports.errors import (
    InvalidInputError,
    NotFoundError,
    StaleVersionError,
)
from portfolio_core.ports.values import MAX_VALUE_DEPTH
from portfolio_core.testing._unavailable import expect_all_unavailable
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.clock import FakeWallClock
from portfolio_core.testing.concurrency import one_winner, run_concurrently
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.loop import accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = ["ConfigStoreContract", "ConfigStoreMachine", "KitLimits"]

WAIT = 10.0


class KitLimits(BaseModel):
    """The schema the kit registers for the prefix ``limits.`` (by reference, as a manifest
    does)."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(gt=0)
    retries: int = Field(0, ge=0)


KIT_SCHEMAS = {"limits.": "portfolio_core.testing.contracts.config_store:KitLimits"}


async def _next(watcher: AsyncIterator[ChangeSet], timeout: float = WAIT) -> ChangeSet:
    return await asyncio.wait_for(anext(watcher), timeout)


async def _nothing_pending(watcher: AsyncIterator[ChangeSet]) -> None:
    """Fail if ``watcher`` delivers anything within a short while."""
    task = asyncio.ensure_future(anext(watcher))
    done, _ = await asyncio.wait({task}, timeout=0.1)
    if done:
        raise AssertionError(f"the watcher delivered an unexpected change set: {task.result()}")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await task


class ConfigStoreContract(ContractSuite[ConfigStore]):
    """The promises of [ConfigStore][portfolio_core.ports.ConfigStore]
    (docs/ports/config_store.md)."""

    port_key = "config_store"
    capability_names = frozenset(c.value for c in ConfigStoreCapability)
    #: seconds a watcher may take to deliver a change set before the clause fails
    watch_timeout: float = WAIT

    async def put_probe(self, adapter: ConfigStore) -> str:
        await adapter.apply({"kit.probe": 1})
        return "kit.probe"

    async def has_probe(self, adapter: ConfigStore, probe: str) -> bool:
        return await adapter.current_version() > 0

    # -- applying --------------------------------------------------------------------------

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

    # -- reading ---------------------------------------------------------------------------

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

    # -- history and rollback ------------------------------------------------------------------

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

    # -- schemas ---------------------------------------------------------------------------------

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

    # -- watching --------------------------------------------------------------------------------

    @clause(
        "config_store.watch.order",
        "a watcher gets every change set after its version touching its prefix, in version "
        "order, holding only the keys under the prefix",
    )
    async def test_watch(self, adapter: ConfigStore) -> None:
        await adapter.apply({"app.a": 1})
        await adapter.apply({"db.a": 1})
        watcher = adapter.watch("app.", from_version=0)
        everything = adapter.watch(from_version=1)
        try:
            first = await _next(watcher, self.watch_timeout)
            assert (first.version, first.updates()) == (1, {"app.a": 1})
            await adapter.apply({"app.b": 2, "db.b": 2}, author="me")
            await adapter.apply({"db.c": 3})
            await adapter.apply({"app.a": DELETE})
            got = [
                await _next(watcher, self.watch_timeout),
                await _next(watcher, self.watch_timeout),
            ]
            assert [(c.version, c.updates()) for c in got] == [
                (3, {"app.b": 2}),
                (5, {"app.a": DELETE}),
            ]
            assert got[0].author == "me"
            await _nothing_pending(watcher)
            all_sets = [await _next(everything, self.watch_timeout) for _ in range(4)]
            assert [c.version for c in all_sets] == [2, 3, 4, 5]
            assert all_sets[1].updates() == {"app.b": 2, "db.b": 2}
        finally:
            await watcher.aclose()  # type: ignore[attr-defined]
            await everything.aclose()  # type: ignore[attr-defined]

    @clause(
        "config_store.watch.live",
        "a watcher started without a version gets the changes made after it started",
    )
    async def test_watch_live(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": 1})
        watcher = adapter.watch()
        try:
            pending = asyncio.ensure_future(_next(watcher, self.watch_timeout))
            await asyncio.sleep(0.05)  # let it start before the change
            await adapter.apply({"a": 2})
            change = await pending
            assert (change.version, change.updates()) == (2, {"a": 2})
        finally:
            await watcher.aclose()  # type: ignore[attr-defined]

    @clause(
        "config_store.watch.resume",
        "a watcher restarted from the last version it saw misses nothing and repeats nothing",
    )
    async def test_watch_resume(self, adapter: ConfigStore) -> None:
        watcher = adapter.watch(from_version=0)
        await adapter.apply({"a": 1})
        seen = [(await _next(watcher, self.watch_timeout)).version]
        await watcher.aclose()  # type: ignore[attr-defined]
        for n in range(2, 5):
            await adapter.apply({"a": n})
        watcher = adapter.watch(from_version=seen[-1])
        try:
            seen.extend([(await _next(watcher, self.watch_timeout)).version for _ in range(3)])
            await adapter.rollback(1)
            rolled = await _next(watcher, self.watch_timeout)
            assert rolled.rollback_of == 1
            assert rolled.updates() == {"a": 1}
        finally:
            await watcher.aclose()  # type: ignore[attr-defined]
        assert seen == [1, 2, 3, 4]

    @clause("config_store.watch.close", "closing the store ends its watchers' iteration")
    async def test_watch_ends_on_close(
        self, new_adapter: Callable[[], Awaitable[ConfigStore]]
    ) -> None:
        store = await new_adapter()
        await store.apply({"a": 1})
        watcher = store.watch(from_version=1)
        pending = asyncio.ensure_future(anext(watcher))
        await asyncio.sleep(0.05)
        await close_adapter(store)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, self.watch_timeout)

    # -- snapshots, time and backend faults ---------------------------------------------------

    @clause(
        "config_store.snapshots",
        "every returned collection (a snapshot's values, the history list, a change set's "
        "updates) is the caller's own: changing it changes nothing in the store",
    )
    async def test_returned_collections_are_copies(self, adapter: ConfigStore) -> None:
        await adapter.apply({"a": {"items": [1]}, "b": 2}, author="ana")
        snap = await adapter.read()
        with contextlib.suppress(TypeError):  # a read-only mapping is a copy too
            snap.values["c"] = 3  # type: ignore[index]
        with contextlib.suppress(TypeError):
            del snap.values["b"]  # type: ignore[attr-defined]
        assert dict(await adapter.read()) == {"a": {"items": [1]}, "b": 2}, (
            "changing a snapshot's values changed what the store reads"
        )
        history = await adapter.history()
        history[0].updates()["a"]["items"].append(2)
        for change in history[0].changes:
            if isinstance(change.value, dict):
                change.value["items"].append(3)
        history.clear()
        again = await adapter.history()
        assert [s.updates() for s in again] == [{"a": {"items": [1]}, "b": 2}], (
            "changing a returned change set or the history list changed the stored history"
        )
        assert await adapter.get("a") == {"items": [1]}

    @clause(
        "config_store.history.wall_clock",
        "a version's time is the store's wall clock when it was made; when that clock steps "
        "back, it holds at the previous version's time instead of decreasing",
    )
    async def test_time_follows_the_wall_clock(
        self, adapter: ConfigStore, wall_clock: FakeWallClock
    ) -> None:
        def at(change_set: ChangeSet) -> float:
            return change_set.at.timestamp()

        await adapter.apply({"a": 1})
        (first,) = await adapter.history()
        assert abs(at(first) - wall_clock.now) < 0.001, (
            f"version 1 is stamped {first.at}, not the store's clock "
            f"({datetime.fromtimestamp(wall_clock.now, UTC)})"
        )
        wall_clock.advance(-30)
        await adapter.apply({"a": 2})
        second = (await adapter.history(from_version=2))[0]
        assert 0 <= at(second) - at(first) < 0.001, (
            "with the clock stepped back, a version's time should hold at the previous one's, "
            f"got {second.at} after {first.at}"
        )
        wall_clock.advance(90)
        await adapter.rollback(1)
        third = (await adapter.history(from_version=3))[0]
        assert abs(at(third) - wall_clock.now) < 0.001, "a version's time did not follow the clock"

    @clause(
        "config_store.faults.unavailable",
        "with the backend unreachable every operation raises UnavailableError and writes "
        "nothing; the store serves again once the backend is back",
    )
    async def test_backend_unreachable(self, adapter: ConfigStore, faults: FaultInjector) -> None:
        await adapter.apply({"a": 1, "b": [1]})
        calls: list[tuple[str, Any]] = [
            ("current_version", adapter.current_version),
            ("get", lambda: adapter.get("a")),
            ("get at a version", lambda: adapter.get("a", version=1)),
            ("read", adapter.read),
            ("history", adapter.history),
            ("apply", lambda: adapter.apply({"a": 2})),
            ("rollback", lambda: adapter.rollback(1)),
            ("watch", lambda: anext(aiter(adapter.watch(from_version=0)))),
        ]
        faults.arm()
        await expect_all_unavailable(calls)
        faults.clear()
        assert faults.calls, "the adapter accepts faults= but never reports reaching its backend"
        assert await adapter.current_version() == 1, "a call that failed unreachable wrote"
        assert dict(await adapter.read()) == {"a": 1, "b": [1]}
        assert await adapter.apply({"a": 2}, expected_version=1) == 2, (
            "the store did not serve again once the backend was back"
        )

    # -- the model ---------------------------------------------------------------------------

    @clause(
        "config_store.model",
        "any sequence of applies, rollbacks, reads and watches behaves like the reference model",
    )
    def test_state_machine(self, make_adapter: Any, kit_settings: KitSettings) -> None:
        run_machine(
            ConfigStoreMachine, make_adapter, kit_settings, watch_timeout=self.watch_timeout
        )


keys = st.sampled_from(["a.x", "a.y", "b.x", "b.y"])
values = st.one_of(
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=3),
    st.lists(st.integers(0, 2), max_size=2),
    st.just(DELETE),
)


def _json(value: Any) -> str:
    """A JSON value's canonical text: ``0`` and ``False``, or ``1`` and ``1.0``, differ here
    although Python's ``==`` calls them equal, and so do they in a config store."""
    return json.dumps(value, sort_keys=True, default=repr)


class ConfigStoreMachine(AdapterMachine[ConfigStore]):
    """Random applies, stale applies, rollbacks and reads against a list of whole states; a
    watcher of ``a.`` opened at the start must deliver exactly the model's changes."""

    def __init__(self, factory: Any, *, watch_timeout: float = WAIT, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.watch_timeout = watch_timeout
        self.states: list[dict[str, Any]] = [{}]
        self.changed: list[dict[str, Any]] = [{}]  # per version: key -> value or DELETE
        self.watcher = self.adapter.watch("a.", from_version=0)
        self.watched = 0

    @property
    def version(self) -> int:
        return len(self.states) - 1

    def _commit(self, updates: dict[str, Any]) -> None:
        state = dict(self.states[-1])
        for key, value in updates.items():
            if value is DELETE:
                state.pop(key, None)
            else:
                state[key] = value
        self.states.append(state)
        self.changed.append(updates)

    @rule(
        updates=st.dictionaries(keys, values, min_size=1, max_size=3),
        mode=st.sampled_from(["none", "right", "stale"]),
    )
    def apply(self, updates: dict[str, Any], mode: str) -> None:
        expected = {"none": None, "right": self.version, "stale": self.version + 1}[mode]
        if mode == "stale":
            with pytest.raises(StaleVersionError):
                self.run(self.adapter.apply(updates, expected_version=expected))
            return
        got = self.run(self.adapter.apply(updates, expected_version=expected))
        self._commit(updates)
        assert got == self.version, f"apply returned {got}, the model is at {self.version}"

    @rule(data=st.data(), prefix=st.sampled_from(["", "a.", "b."]))
    def rollback(self, data: st.DataObject, prefix: str) -> None:
        target = data.draw(st.integers(0, self.version + 1))
        if target > self.version:
            with pytest.raises(NotFoundError):
                self.run(self.adapter.rollback(target, prefix=prefix))
            return
        now, then = self.states[-1], self.states[target]
        updates: dict[str, Any] = {k: DELETE for k in now if k.startswith(prefix) and k not in then}
        updates.update(
            {
                k: v
                for k, v in then.items()
                if k.startswith(prefix) and (k not in now or _json(now[k]) != _json(v))
            }
        )
        got = self.run(self.adapter.rollback(target, prefix=prefix))
        self._commit(updates)
        assert got == self.version
        wanted = {k: v for k, v in then.items() if k.startswith(prefix)}
        have = dict(self.run(self.adapter.read(prefix)))
        assert _json(have) == _json(wanted), f"rollback to {target} restored {have}, not {wanted}"

    @rule(data=st.data())
    def read_at(self, data: st.DataObject) -> None:
        version = data.draw(st.integers(0, self.version))
        snap = self.run(self.adapter.read(version=version))
        assert snap.version == version
        assert _json(dict(snap)) == _json(self.states[version])

    @precondition(lambda self: self.watched < self.version)
    @rule()
    def drain_watcher(self) -> None:
        for version in range(self.watched + 1, self.version + 1):
            wanted = {k: v for k, v in self.changed[version].items() if k.startswith("a.")}
            if not wanted:
                continue
            got = self.run(_next(self.watcher, self.watch_timeout))
            assert got.version == version, (
                f"the watcher delivered version {got.version}, expected {version}: skipped or "
                "reordered"
            )
            assert _json(got.updates()) == _json(wanted), (got.updates(), wanted)
        self.watched = self.version

    @invariant()
    def current(self) -> None:
        assert self.run(self.adapter.current_version()) == self.version
        assert _json(dict(self.run(self.adapter.read()))) == _json(self.states[-1])

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.watcher.aclose())  # type: ignore[attr-defined]
        super().teardown()
