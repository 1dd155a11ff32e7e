"""Contract suite of the Cache port, with a state machine against a pure reference model.

Factories: ``make_adapter`` returns a factory of fresh, empty caches. The kit passes
``clock=`` when the factory accepts it (TTL clauses that move time are skipped otherwise: an
adapter whose expiry is its server's, like Redis's native TTLs, is checked only for accepting
TTLs and keeping items until then). Clauses on tenant scoping call the factory with
``tenant_scoped=True`` and run only when the adapter declares ``cache.tenant_scoped`` and the
factory accepts that keyword. The bounded-size clause passes ``max_entries=``.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from portfolio_core.ports.cache import MAX_KEY_LENGTH, Cache, CacheCapability, CacheStats
from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import InvalidInputError, TenantRequiredError, UnavailableError
from portfolio_core.ports.tenant import TenantContext, tenant_scope
from portfolio_core.ports.values import MAX_VALUE_DEPTH
from portfolio_core.testing.adversarial import ADVERSARIAL_IDS, adversarial_ids
from portfolio_core.testing.clauses import clause, expect_unsupported, requires, requires_absent
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.concurrency import run_concurrently
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.loop import LoopRunner, accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.machines import AdapterMachine, property_settings, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = ["CacheContract", "CacheMachine", "TenantIsolationMachine", "with_options"]

VALUES: list[Any] = [
    0,
    -7,
    2**53,
    1.5,
    True,
    False,
    "",
    "text with ünïcode ✓",
    [],
    {},
    [1, "a", None, [2.5, {"x": False}]],
    {"nested": {"list": [1, 2, 3], "none": None}, "s": "v"},
    "nul \x00 inside",
    {"k\x00": ["v\x00", {"\x00": "\x00"}]},
]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


BAD_VALUES: list[Any] = [
    None,
    (1, 2),
    {1, 2},
    b"bytes",
    {1: "int key"},
    float("nan"),
    object(),
    {"k": [1, (2,)]},
    "lone \udc80 surrogate",
    {"k": ["\ud800"]},
    {"\udfff": 1},
    _nested(MAX_VALUE_DEPTH + 1),
    _nested(5000),
]
BAD_KEYS: list[Any] = [
    "",
    "k" * (MAX_KEY_LENGTH + 1),
    7,
    None,
    b"k",
    "nul\x00key",
    "lone\udc80surrogate",
]
BAD_TTLS: list[Any] = [0, -1, -0.5, float("nan"), float("inf"), "10", True, False, [5]]

#: how long the real-time expiry clause waits for a 0.3 s ttl to pass (server TTLs may be
#: coarse, and a loaded machine slow)
REAL_TIME_WAIT = 5.0

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
).filter(lambda v: v is not None)


def with_options(factory: Factory, **options: object) -> Factory:
    """``factory`` called with ``options`` as well, still offering ``clock=`` to the kit."""
    if accepts_keyword(factory, "clock"):

        def timed(clock: Callable[[], float]) -> Any:
            return factory(clock=clock, **options)

        return timed

    def untimed() -> Any:
        return factory(**options)

    return untimed


class CacheContract(ContractSuite[Cache]):
    """The promises of :class:`~portfolio_core.ports.Cache` (see docs/ports/cache.md)."""

    port_key = "cache"
    capability_names = frozenset(c.value for c in CacheCapability)

    async def put_probe(self, adapter: Cache) -> str:
        await adapter.put("kit-probe", {"probe": 1})
        return "kit-probe"

    async def has_probe(self, adapter: Cache, probe: str) -> bool:
        return await adapter.get(probe) == {"probe": 1}

    # -- fixtures --------------------------------------------------------------------------------

    @pytest.fixture
    def scoped_adapter(
        self, make_adapter: Factory, kit_runner: LoopRunner, kit_clock: FakeClock
    ) -> Iterator[Cache]:
        """A fresh adapter made with ``tenant_scoped=True`` (skips when it cannot be)."""
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so scoping is not checked")
        made: Cache = kit_runner.run(
            open_adapter(with_options(make_adapter, tenant_scoped=True), clock=kit_clock)
        )
        try:
            if not supports(made, CacheCapability.TENANT_SCOPED):
                pytest.skip(f"{type(made).__name__} does not declare 'cache.tenant_scoped'")
            yield made
        finally:
            kit_runner.run(close_adapter(made))

    # -- put / get -------------------------------------------------------------------------------

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

    # -- delete / exists / clear ---------------------------------------------------------------

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

    # -- bulk ------------------------------------------------------------------------------------

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

    # -- TTL -------------------------------------------------------------------------------------

    @clause("cache.ttl.expires", "an item is returned until its TTL passes, never after")
    @requires(CacheCapability.TTL)
    async def test_ttl_expires(self, adapter: Cache, clock: FakeClock) -> None:
        await adapter.put("k", 1, ttl=5)
        await adapter.put_many({"m": 2}, ttl=5)
        clock.advance(4.5)
        assert await adapter.get("k") == 1, "expired before its TTL"
        assert await adapter.get_many(["k", "m"]) == {"k": 1, "m": 2}
        clock.advance(1)
        assert await adapter.get("k") is None, "returned after its TTL passed"
        assert await adapter.get_many(["k", "m"]) == {}, "get_many returned expired items"

    @clause(
        "cache.ttl.boundary",
        "an item is live strictly before put time + ttl and expired at exactly that instant; "
        "fractional ttls count to the fraction",
    )
    @requires(CacheCapability.TTL)
    async def test_ttl_boundary(self, adapter: Cache, clock: FakeClock) -> None:
        # times chosen exact in binary floating point, so "exactly the TTL" is exact
        await adapter.put("k", 1, ttl=5)
        await adapter.put("d", 1, ttl=5)
        await adapter.put("g", 1, ttl=5)
        clock.advance(4.5)
        assert await adapter.get_many(["k", "d", "g"]) == {"k": 1, "d": 1, "g": 1}
        clock.advance(0.5)
        assert await adapter.delete("d") is False, "delete found an item at exactly its TTL"
        assert await adapter.exists("k") is False, "exists was true at exactly the TTL"
        assert await adapter.get("g") is None, "an item was returned at exactly its TTL"
        await adapter.put("frac", 2, ttl=0.25)
        clock.advance(0.125)
        assert await adapter.get("frac") == 2, "an item with ttl=0.25 expired after 0.125 s"
        clock.advance(0.125)
        assert await adapter.get("frac") is None, (
            "an item with ttl=0.25 was still returned 0.25 s later (fractional ttl rounded up?)"
        )

    @clause(
        "cache.ttl.real_time",
        "without an injectable clock, a short ttl is honoured in real time (bounded wait)",
    )
    @requires(CacheCapability.TTL)
    async def test_ttl_real_time(self, adapter: Cache, make_adapter: Factory) -> None:
        if accepts_keyword(make_adapter, "clock"):
            pytest.skip("the factory takes clock=: expiry is checked with the kit's clock")
        await adapter.put("short", 1, ttl=0.3)
        await adapter.put_many({"short-many": 2}, ttl=0.3)
        await adapter.put("long", 3, ttl=600)
        deadline = time.monotonic() + REAL_TIME_WAIT
        for _ in range(int(REAL_TIME_WAIT / 0.05)):  # poll the adapter: it has no event to wait on
            if not await adapter.get_many(["short", "short-many"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert await adapter.get_many(["short", "short-many", "long"]) == {"long": 3}, (
            f"an item with ttl=0.3 was still returned {REAL_TIME_WAIT:g} s later"
        )
        assert await adapter.exists("short") is False
        assert await adapter.delete("short") is False, "delete reported an expired item present"

    @clause("cache.ttl.exists", "exists is false and delete returns False once the TTL has passed")
    @requires(CacheCapability.TTL)
    async def test_exists_after_expiry(self, adapter: Cache, clock: FakeClock) -> None:
        await adapter.put("k", 1, ttl=1)
        await adapter.put("d", 1, ttl=1)
        clock.advance(2)
        assert await adapter.exists("k") is False, "exists is true after expiry"
        assert await adapter.delete("d") is False, "delete reported an expired item as present"

    @clause("cache.ttl.overwrite", "a put without ttl replaces an earlier expiry")
    @requires(CacheCapability.TTL)
    async def test_ttl_overwrite(self, adapter: Cache, clock: FakeClock) -> None:
        await adapter.put("k", 1, ttl=1)
        await adapter.put("k", 2)
        clock.advance(10)
        assert await adapter.get("k") == 2

    @clause("cache.ttl.accepted", "put with a ttl keeps the item until then (no clock needed)")
    @requires(CacheCapability.TTL)
    async def test_ttl_accepted(self, adapter: Cache) -> None:
        await adapter.put("k", 1, ttl=60)
        await adapter.put_many({"m": 2}, ttl=60.5)
        assert await adapter.get_many(["k", "m"]) == {"k": 1, "m": 2}

    @clause("cache.ttl.unsupported", "without TTL support, put with a ttl raises UnsupportedError")
    @requires_absent(CacheCapability.TTL)
    async def test_ttl_unsupported(self, adapter: Cache) -> None:
        with expect_unsupported(CacheCapability.TTL):
            await adapter.put("k", 1, ttl=5)

    # -- optional operations -------------------------------------------------------------------

    @clause("cache.enumerate", "keys() lists and count() counts exactly the live items")
    @requires(CacheCapability.ENUMERATE)
    async def test_enumerate(self, adapter: Any) -> None:
        assert await adapter.keys() == []
        assert await adapter.count() == 0
        await adapter.put_many({"a": 1, "b": 2, "c": 3})
        await adapter.delete("b")
        assert sorted(await adapter.keys()) == ["a", "c"]
        assert await adapter.count() == 2

    @clause(
        "cache.snapshot",
        "get_many and keys() return new collections: mutating them changes nothing stored",
    )
    async def test_returned_collections_are_copies(self, adapter: Any) -> None:
        await adapter.put_many({"a": [1], "b": 2})
        many = await adapter.get_many(["a", "b"])
        many["c"] = 3
        del many["b"]
        many["a"].append(9)
        assert await adapter.get_many(["a", "b", "c"]) == {"a": [1], "b": 2}, (
            "mutating the dict returned by get_many changed the cache"
        )
        if supports(adapter, CacheCapability.ENUMERATE):
            listed = await adapter.keys()
            listed.append("ghost")
            listed.remove("a")
            assert sorted(await adapter.keys()) == ["a", "b"], (
                "mutating the list returned by keys() changed what keys() returns"
            )
            assert await adapter.count() == 2

    @clause("cache.enumerate.expiry", "keys() and count() leave out expired items")
    @requires(CacheCapability.ENUMERATE, CacheCapability.TTL)
    async def test_enumerate_expiry(self, adapter: Any, clock: FakeClock) -> None:
        await adapter.put("short", 1, ttl=1)
        await adapter.put("long", 1)
        clock.advance(2)
        assert await adapter.keys() == ["long"]
        assert await adapter.count() == 1

    @clause("cache.enumerate.unsupported", "without the capability, keys() raises UnsupportedError")
    @requires_absent(CacheCapability.ENUMERATE)
    async def test_enumerate_unsupported(self, adapter: Any) -> None:
        if not hasattr(adapter, "keys"):
            return
        with expect_unsupported(CacheCapability.ENUMERATE):
            await adapter.keys()

    @clause("cache.fetch.single_flight", "concurrent fetches of a missing key populate it once")
    @requires(CacheCapability.FETCH)
    async def test_fetch_once(self, adapter: Any) -> None:
        calls = 0

        async def populate() -> dict[str, int]:
            nonlocal calls
            calls += 1
            for _ in range(5):
                await asyncio.sleep(0)
            return {"v": 1}

        results = await run_concurrently(10, lambda i: adapter.fetch("k", populate))
        assert results == [{"v": 1}] * 10, results
        assert calls == 1, f"populate ran {calls} times for one key"
        assert await adapter.get("k") == {"v": 1}
        assert await adapter.fetch("k", populate) == {"v": 1}
        assert calls == 1, "fetch of a present key called populate"

    @clause(
        "cache.fetch.cancellation",
        "a cancelled waiter cancels neither the others nor the population, and leaves no lock",
    )
    @requires(CacheCapability.FETCH)
    async def test_fetch_cancellation(self, adapter: Any) -> None:
        gate = asyncio.Event()
        calls = 0

        async def populate() -> int:
            nonlocal calls
            calls += 1
            await gate.wait()
            return 7

        first = asyncio.ensure_future(adapter.fetch("k", populate))
        second = asyncio.ensure_future(adapter.fetch("k", populate))
        for _ in range(5):
            await asyncio.sleep(0)
        first.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        assert await asyncio.wait_for(second, 10) == 7, "the other waiter did not get the value"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert calls == 1

        async def boom() -> int:
            raise RuntimeError("populate failed")

        with pytest.raises(RuntimeError):
            await asyncio.wait_for(adapter.fetch("e", boom), 10)

        async def ok() -> int:
            return 3

        assert await asyncio.wait_for(adapter.fetch("e", ok), 10) == 3, (
            "a failed population left the key stuck"
        )

    @clause("cache.fetch.unsupported", "without the capability, fetch raises UnsupportedError")
    @requires_absent(CacheCapability.FETCH)
    async def test_fetch_unsupported(self, adapter: Any) -> None:
        if not hasattr(adapter, "fetch"):
            return

        async def populate() -> int:
            return 1

        with expect_unsupported(CacheCapability.FETCH):
            await adapter.fetch("k", populate)

    @clause("cache.bounded", "a bounded cache never holds more than max_entries items")
    @requires(CacheCapability.BOUNDED)
    async def test_bounded(self, make_adapter: Factory, kit_clock: FakeClock) -> None:
        if not accepts_keyword(make_adapter, "max_entries"):
            pytest.skip("the factory does not accept max_entries=")
        adapter = await open_adapter(with_options(make_adapter, max_entries=3), clock=kit_clock)
        try:
            keys = [f"k{i}" for i in range(10)]
            for i, key in enumerate(keys):
                await adapter.put(key, i)
            held = await adapter.get_many(keys)
            assert len(held) <= 3, f"holds {len(held)} items with max_entries=3"
            assert held, "a bounded cache evicted everything"
            assert all(held[k] == int(k[1:]) for k in held)
        finally:
            await close_adapter(adapter)

    @clause(
        "cache.bounded.under_bound",
        "a bounded cache below its bound behaves like an unbounded one: it evicts nothing",
    )
    @requires(CacheCapability.BOUNDED)
    async def test_bounded_under_bound(self, make_adapter: Factory, kit_clock: FakeClock) -> None:
        if not accepts_keyword(make_adapter, "max_entries"):
            pytest.skip("the factory does not accept max_entries=")
        adapter = await open_adapter(with_options(make_adapter, max_entries=8), clock=kit_clock)
        try:
            keys = [f"k{i}" for i in range(8)]
            for i, key in enumerate(keys):
                await adapter.put(key, i)
            await adapter.put("k0", "again")  # an overwrite adds no item
            await adapter.delete("k7")
            await adapter.put("k8", 8)  # takes the deleted item's room
            held = await adapter.get_many([*keys, "k8"])
            expected = {k: i for i, k in enumerate(keys)} | {"k0": "again", "k8": 8}
            del expected["k7"]
            assert held == expected, (
                f"a cache with max_entries=8 holding 8 items lost some: {sorted(held)}"
            )
            stats = getattr(adapter, "stats", None)
            if callable(stats):
                counters = await _call(stats())
                if isinstance(counters, CacheStats):
                    assert counters.evictions == 0, (
                        f"stats() counts {counters.evictions} evictions below the bound"
                    )
        finally:
            await close_adapter(adapter)

    @clause(
        "cache.stats",
        "an adapter offering stats() counts each get and each key of get_many as a hit or a "
        "miss, evictions only to respect the bound, and the items held",
    )
    @requires(CacheCapability.BOUNDED)
    async def test_stats(self, make_adapter: Factory, kit_clock: FakeClock) -> None:
        if not accepts_keyword(make_adapter, "max_entries"):
            pytest.skip("the factory does not accept max_entries=")
        adapter = await open_adapter(with_options(make_adapter, max_entries=3), clock=kit_clock)
        try:
            stats = getattr(adapter, "stats", None)
            if not callable(stats) or not isinstance(await _call(stats()), CacheStats):
                pytest.skip(f"{type(adapter).__name__} offers no stats() -> CacheStats")
            await adapter.put_many({"a": 1, "b": 2})
            await adapter.get("a")
            await adapter.get("missing")
            await adapter.get_many(["a", "b", "gone", "a"])
            await adapter.delete("b")
            got = await _call(stats())
            assert (got.hits, got.misses, got.evictions, got.size) == (4, 2, 0, 1), (
                f"after 4 hits, 2 misses and a delete: {got}"
            )
            for key in ("c", "d", "e", "f"):
                await adapter.put(key, 0)
            got = await _call(stats())
            assert (got.evictions, got.size) == (2, 3), (
                f"5 items put into room for 3 make 2 evictions: {got}"
            )
        finally:
            await close_adapter(adapter)

    # -- backend faults --------------------------------------------------------------------------

    @clause(
        "cache.faults.unavailable",
        "an unreachable backend raises UnavailableError on every operation, writes nothing, "
        "and the adapter serves again once the backend is back",
    )
    async def test_backend_unreachable(self, adapter: Any, faults: FaultInjector) -> None:
        await adapter.put_many({"k": 1, "gone": 2})
        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("get", lambda: adapter.get("k")),
            ("put", lambda: adapter.put("k", 99)),
            ("delete", lambda: adapter.delete("gone")),
            ("exists", lambda: adapter.exists("k")),
            ("get_many", lambda: adapter.get_many(["k"])),
            ("put_many", lambda: adapter.put_many({"k": 99, "new": 3})),
            ("clear", adapter.clear),
        ]
        if supports(adapter, CacheCapability.ENUMERATE):
            calls.append(("keys", adapter.keys))
        faults.arm()
        for name, call in calls:
            await _expect_unavailable(name, call)
        faults.clear()
        assert faults.calls, "the adapter accepts faults= but never reports reaching its backend"
        assert await adapter.get_many(["k", "gone", "new"]) == {"k": 1, "gone": 2}, (
            "a call that failed with the backend unreachable changed what is stored"
        )
        await adapter.put("k", 5)
        assert await adapter.get("k") == 5, "the adapter did not recover once the backend was back"

    # -- tenant scoping --------------------------------------------------------------------------

    @clause("cache.tenant.fail_closed", "a tenant-scoped cache refuses every call with no tenant")
    def test_tenant_fail_closed(self, scoped_adapter: Any, kit_runner: LoopRunner) -> None:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: scoped_adapter.get("k"),
            lambda: scoped_adapter.put("k", 1),
            lambda: scoped_adapter.delete("k"),
            lambda: scoped_adapter.exists("k"),
            lambda: scoped_adapter.clear(),
            lambda: scoped_adapter.get_many(["k"]),
            lambda: scoped_adapter.put_many({"k": 1}),
        ]
        if supports(scoped_adapter, CacheCapability.ENUMERATE):
            calls += [lambda: scoped_adapter.keys(), lambda: scoped_adapter.count()]
        for call in calls:
            with pytest.raises(TenantRequiredError):
                kit_runner.run(call())

    @clause(
        "cache.tenant.clear_isolated",
        "clear() by one tenant removes only that tenant's items, never another tenant's",
    )
    def test_tenant_clear_isolated(self, scoped_adapter: Any, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            with tenant_scope("alice"):
                await scoped_adapter.put("shared-key", "alice's")
            with tenant_scope("bob"):
                await scoped_adapter.put("shared-key", "bob's")
                await scoped_adapter.put("bob-only", 2)
            with tenant_scope("alice"):
                await scoped_adapter.clear()
                assert await scoped_adapter.get("shared-key") is None, "clear left alice's item"
            with tenant_scope("bob"):
                assert await scoped_adapter.get("shared-key") == "bob's", (
                    "alice's clear() removed bob's item"
                )
                assert await scoped_adapter.get("bob-only") == 2, (
                    "alice's clear() removed bob's item"
                )

        kit_runner.run(body())

    @clause(
        "cache.tenant.default_ttl",
        "a scoped cache applies the tenant's cache.default_ttl override when put has no ttl",
    )
    @requires(CacheCapability.TTL)
    def test_tenant_default_ttl(
        self, scoped_adapter: Any, kit_runner: LoopRunner, clock: FakeClock
    ) -> None:
        short = TenantContext("short", {"cache.default_ttl": 5})

        async def body() -> None:
            with tenant_scope(short):
                await scoped_adapter.put("k", 1)
                await scoped_adapter.put_many({"m": 2})
                await scoped_adapter.put("explicit", 3, ttl=50)
            with tenant_scope("plain"):
                await scoped_adapter.put("k", 1)
            clock.advance(6)
            with tenant_scope(short):
                assert await scoped_adapter.get_many(["k", "m", "explicit"]) == {"explicit": 3}, (
                    "the tenant's cache.default_ttl was not applied (or overrode an explicit ttl)"
                )
            with tenant_scope("plain"):
                assert await scoped_adapter.get("k") == 1, "another tenant's override leaked"

        kit_runner.run(body())

    @clause(
        "cache.tenant.isolation", "one tenant cannot read, list, count, delete or clear another's"
    )
    def test_tenant_isolation_examples(self, scoped_adapter: Any, kit_runner: LoopRunner) -> None:
        async def body() -> None:
            with tenant_scope("a"):
                await scoped_adapter.put_many({"k": "a", "only-a": 1})
            with tenant_scope("b"):
                assert await scoped_adapter.get("k") is None, "tenant b read tenant a's item"
                assert not await scoped_adapter.exists("only-a")
                assert await scoped_adapter.get_many(["k", "only-a"]) == {}
                assert await scoped_adapter.delete("k") is False
                await scoped_adapter.put("k", "b")
                await scoped_adapter.clear()
                if supports(scoped_adapter, CacheCapability.ENUMERATE):
                    assert await scoped_adapter.keys() == []
                    assert await scoped_adapter.count() == 0
            with tenant_scope("a"):
                assert await scoped_adapter.get_many(["k", "only-a"]) == {"k": "a", "only-a": 1}, (
                    "another tenant's delete or clear removed tenant a's items"
                )

        kit_runner.run(body())

    @clause(
        "cache.tenant.isolation", "one tenant cannot read, list, count, delete or clear another's"
    )
    @requires(CacheCapability.TENANT_SCOPED)
    def test_tenant_isolation_property(
        self, make_adapter: Factory, kit_settings: KitSettings
    ) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so scoping is not checked")
        run_machine(
            TenantIsolationMachine, with_options(make_adapter, tenant_scoped=True), kit_settings
        )

    @clause(
        "cache.tenant.adversarial_ids",
        "two different tenant ids, however alike (case only, separators, '..', astral "
        "characters, escapes written literally), never see each other's items",
    )
    def test_tenant_ids_never_collide(
        self, scoped_adapter: Any, kit_runner: LoopRunner, kit_settings: KitSettings
    ) -> None:
        enumerable = supports(scoped_adapter, CacheCapability.ENUMERATE)

        @property_settings(kit_settings)
        @given(first=adversarial_ids(), second=adversarial_ids())
        def check(first: str, second: str) -> None:
            assume(first != second)

            async def body() -> None:
                with tenant_scope(first):
                    await scoped_adapter.put("k", {"tenant": first})
                with tenant_scope(second):
                    await scoped_adapter.put("k", {"tenant": second})
                with tenant_scope(first):
                    got = await scoped_adapter.get("k")
                    assert got == {"tenant": first}, f"tenant {first!r} read {got!r}"
                    if enumerable:
                        assert await scoped_adapter.keys() == ["k"]

            kit_runner.run(body())

        async def every_fixed_id() -> None:
            for tenant in ADVERSARIAL_IDS:
                with tenant_scope(tenant):
                    await scoped_adapter.put("k", {"tenant": tenant})
            for tenant in ADVERSARIAL_IDS:
                with tenant_scope(tenant):
                    got = await scoped_adapter.get("k")
                    assert got == {"tenant": tenant}, f"tenant {tenant!r} read {got!r}"

        kit_runner.run(every_fixed_id())
        check()

    @clause(
        "cache.key.adversarial",
        "different keys, however alike (case only, separators, '..', astral characters), "
        "hold different items",
    )
    def test_keys_never_collide(
        self, adapter: Any, kit_runner: LoopRunner, kit_settings: KitSettings
    ) -> None:
        enumerable = supports(adapter, CacheCapability.ENUMERATE)

        @property_settings(kit_settings)
        @given(keys=st.lists(adversarial_ids(), unique=True, min_size=2, max_size=6))
        def check(keys: list[str]) -> None:
            async def body() -> None:
                await adapter.clear()
                for i, key in enumerate(keys):
                    await adapter.put(key, i)
                got = [await adapter.get(key) for key in keys]
                assert got == list(range(len(keys))), f"keys {keys!r} share items: {got!r}"
                if enumerable:
                    assert sorted(await adapter.keys()) == sorted(keys)

            kit_runner.run(body())

        check()
        check.hypothesis.inner_test(list(ADVERSARIAL_IDS))  # type: ignore[attr-defined]

    # -- the model ---------------------------------------------------------------------------------

    @clause("cache.model", "any sequence of operations behaves like the reference model")
    def test_state_machine(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        if accepts_keyword(make_adapter, "max_entries"):
            # the machine uses five keys: with room for many more, a bounded cache must
            # behave exactly like the model (it may never evict)
            run_machine(
                CacheMachine,
                with_options(make_adapter, max_entries=MACHINE_ROOM),
                kit_settings,
                exact=True,
            )
        else:
            run_machine(CacheMachine, make_adapter, kit_settings)


# -- state machines -------------------------------------------------------------------------------

keys_st = st.sampled_from(["a", "b", "c", "d:e", "d/e"])
#: the max_entries the state machine passes to factories that take it: far above its keys
MACHINE_ROOM = 64
values_st = st.integers(-5, 5) | st.text(max_size=3) | st.lists(st.integers(0, 3), max_size=2)
ttls_st = st.floats(0.5, 10)


async def _expect_unavailable(name: str, call: Callable[[], Awaitable[Any]]) -> None:
    """``call`` must raise UnavailableError (the backend is down)."""
    try:
        await call()
    except UnavailableError:
        return
    except Exception as exc:
        raise AssertionError(
            f"{name} with the backend unreachable raised {exc!r}, not UnavailableError"
        ) from exc
    raise AssertionError(f"{name} succeeded with the backend unreachable")


async def _call(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class CacheMachine(AdapterMachine[Cache]):
    """Any operation sequence behaves like a dict of ``key -> (value, deadline)``."""

    def __init__(self, factory: Factory, *, exact: bool = False, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.model: dict[str, tuple[Any, float | None]] = {}
        self.ttl = supports(self.adapter, CacheCapability.TTL) and self.controls_time
        # a bounded cache whose bound the kit does not know may evict at any time; one made
        # with room to spare (exact) may not
        self.bounded = supports(self.adapter, CacheCapability.BOUNDED) and not exact

    def live(self, key: str) -> Any | None:
        value, deadline = self.model.get(key, (None, None))
        if deadline is not None and self.clock() >= deadline:
            return None
        return value

    def live_keys(self) -> list[str]:
        return sorted(k for k in self.model if self.live(k) is not None)

    @rule(key=keys_st, value=values_st)
    def put(self, key: str, value: Any) -> None:
        self.run(self.adapter.put(key, value))
        self.model[key] = (value, None)

    @precondition(lambda self: self.ttl)
    @rule(key=keys_st, value=values_st, ttl=ttls_st)
    def put_ttl(self, key: str, value: Any, ttl: float) -> None:
        self.run(self.adapter.put(key, value, ttl=ttl))
        self.model[key] = (value, self.clock() + ttl)

    @rule(items=st.dictionaries(keys_st, values_st, max_size=3))
    def put_many(self, items: dict[str, Any]) -> None:
        self.run(self.adapter.put_many(items))
        for key, value in items.items():
            self.model[key] = (value, None)

    @rule(key=keys_st, bad=st.sampled_from([(1,), None, b"x"]))
    def put_bad(self, key: str, bad: Any) -> None:
        with pytest.raises(InvalidInputError):
            self.run(self.adapter.put_many({"a": 1, key: bad}))

    @precondition(lambda self: self.ttl)
    @rule(seconds=st.floats(0, 6))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(key=keys_st)
    def get(self, key: str) -> None:
        got = self.run(self.adapter.get(key))
        if self.bounded and got is None:
            self.model.pop(key, None)  # a bounded cache may have evicted it
            return
        assert got == self.live(key), f"get({key!r}) gave {got!r}, model has {self.live(key)!r}"

    @rule(key=keys_st)
    def exists(self, key: str) -> None:
        got = self.run(self.adapter.exists(key))
        if self.bounded and not got:
            self.model.pop(key, None)
            return
        assert got == (self.live(key) is not None), f"exists({key!r}) gave {got!r}"

    @rule(keys=st.lists(keys_st, max_size=4))
    def get_many(self, keys: list[str]) -> None:
        got = self.run(self.adapter.get_many(keys))
        expected = {k: self.live(k) for k in keys if self.live(k) is not None}
        if self.bounded:
            assert all(expected.get(k) == v for k, v in got.items()), got
            return
        assert got == expected, f"get_many({keys!r}) gave {got!r}, expected {expected!r}"

    @rule(key=keys_st)
    def delete(self, key: str) -> None:
        got = self.run(self.adapter.delete(key))
        expected = self.live(key) is not None
        self.model.pop(key, None)
        if not self.bounded:
            assert got == expected, f"delete({key!r}) returned {got!r}, expected {expected!r}"

    @rule()
    def clear(self) -> None:
        self.run(self.adapter.clear())
        self.model.clear()

    @precondition(lambda self: supports(self.adapter, CacheCapability.ENUMERATE))
    @rule()
    def keys(self) -> None:
        got = sorted(self.run(self.adapter.keys()))  # type: ignore[attr-defined]
        counted = self.run(self.adapter.count())  # type: ignore[attr-defined]
        if self.bounded:
            assert set(got) <= set(self.live_keys()), got
            return
        assert got == self.live_keys(), f"keys() gave {got!r}, expected {self.live_keys()!r}"
        assert counted == len(got), f"count() gave {counted}, keys() listed {len(got)}"


tenants_st = st.sampled_from(["alpha", "beta", "alpha:beta"])


class TenantIsolationMachine(AdapterMachine[Cache]):
    """With scoping on, each tenant sees exactly what its own operations left (one dict each)."""

    def __init__(self, factory: Factory, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.models: dict[str, dict[str, Any]] = {}
        self.enumerable = supports(self.adapter, CacheCapability.ENUMERATE)

    def model(self, tenant: str) -> dict[str, Any]:
        return self.models.setdefault(tenant, {})

    def scoped(self, tenant: str, call: Callable[[], Awaitable[Any]]) -> Any:
        async def body() -> Any:
            with tenant_scope(tenant):
                return await call()

        return self.run(body())

    @rule(tenant=tenants_st, key=keys_st, value=values_st)
    def put(self, tenant: str, key: str, value: Any) -> None:
        self.scoped(tenant, lambda: self.adapter.put(key, value))
        self.model(tenant)[key] = value

    @rule(tenant=tenants_st, items=st.dictionaries(keys_st, values_st, max_size=3))
    def put_many(self, tenant: str, items: dict[str, Any]) -> None:
        self.scoped(tenant, lambda: self.adapter.put_many(items))
        self.model(tenant).update(items)

    @rule(tenant=tenants_st, key=keys_st)
    def get(self, tenant: str, key: str) -> None:
        got = self.scoped(tenant, lambda: self.adapter.get(key))
        assert got == self.model(tenant).get(key), f"tenant {tenant!r} read {got!r} at {key!r}"

    @rule(tenant=tenants_st, key=keys_st)
    def exists(self, tenant: str, key: str) -> None:
        got = self.scoped(tenant, lambda: self.adapter.exists(key))
        assert got == (key in self.model(tenant)), f"tenant {tenant!r}: exists({key!r}) {got!r}"

    @rule(tenant=tenants_st)
    def get_many(self, tenant: str) -> None:
        keys = ["a", "b", "c", "d:e"]
        got = self.scoped(tenant, lambda: self.adapter.get_many(keys))
        mine = self.model(tenant)
        assert got == {k: mine[k] for k in keys if k in mine}, f"tenant {tenant!r} saw {got!r}"

    @rule(tenant=tenants_st, key=keys_st)
    def delete(self, tenant: str, key: str) -> None:
        got = self.scoped(tenant, lambda: self.adapter.delete(key))
        assert got == (key in self.model(tenant)), f"tenant {tenant!r}: delete({key!r}) {got!r}"
        self.model(tenant).pop(key, None)

    @rule(tenant=tenants_st)
    def clear(self, tenant: str) -> None:
        self.scoped(tenant, self.adapter.clear)
        self.model(tenant).clear()

    @precondition(lambda self: self.enumerable)
    @rule(tenant=tenants_st)
    def keys_and_count(self, tenant: str) -> None:
        adapter: Any = self.adapter
        listed = sorted(self.scoped(tenant, adapter.keys))
        counted = self.scoped(tenant, adapter.count)
        assert listed == sorted(self.model(tenant)), f"tenant {tenant!r} listed {listed!r}"
        assert counted == len(self.model(tenant)), f"tenant {tenant!r} counted {counted}"
