"""The tenant-isolation property, shared by every tenant-scoped cache adapter's tests.

With scoping on, each tenant's observations (get, exists, get_many, keys, count, delete's
answer) must equal those of a private dict that only that tenant's own operations touch:
whatever another tenant does (put, delete, clear, ...) cannot be read, listed, counted,
deleted or cleared through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfolio_core.ports import Cache, tenant_scope

TENANTS = ("alpha", "beta", "alpha:beta")
KEYS = ("k", "k2", "alpha", "beta:k")
OPS = ("put", "get", "delete", "exists", "get_many", "put_many", "clear", "keys", "count")

op_strategy = st.tuples(
    st.sampled_from(TENANTS),
    st.sampled_from(OPS),
    st.sampled_from(KEYS),
    st.integers(min_value=0, max_value=9),
)


async def check_isolation(cache: Any, ops: list[tuple[str, str, str, int]]) -> None:
    model: dict[str, dict[str, int]] = {t: {} for t in TENANTS}
    for tenant, op, key, value in ops:
        mine = model[tenant]
        with tenant_scope(tenant):
            if op == "put":
                await cache.put(key, value)
                mine[key] = value
            elif op == "put_many":
                await cache.put_many({key: value, "k2": value + 1})
                mine[key] = value
                mine["k2"] = value + 1
            elif op == "get":
                assert await cache.get(key) == mine.get(key), (tenant, op, key)
            elif op == "exists":
                assert await cache.exists(key) == (key in mine), (tenant, op, key)
            elif op == "delete":
                assert await cache.delete(key) == (key in mine), (tenant, op, key)
                mine.pop(key, None)
            elif op == "get_many":
                expected = {k: mine[k] for k in KEYS if k in mine}
                assert await cache.get_many(list(KEYS)) == expected, (tenant, op)
            elif op == "clear":
                await cache.clear()
                mine.clear()
            elif op == "keys":
                assert sorted(await cache.keys()) == sorted(mine), (tenant, op)
            elif op == "count":
                assert await cache.count() == len(mine), (tenant, op)


def isolation_test(
    make: Callable[[], Awaitable[Cache]],
    cleanup: Callable[[Any], Awaitable[None]],
    max_examples: int = 30,
) -> Callable[[], None]:
    """A hypothesis test running random operation sequences on fresh scoped caches."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(op_strategy, min_size=1, max_size=30))
    def run(ops: list[tuple[str, str, str, int]]) -> None:
        async def body() -> None:
            cache = await make()
            try:
                await check_isolation(cache, ops)
            finally:
                await cleanup(cache)

        asyncio.run(body())

    return run
