"""Tenant isolation of every EventStore adapter that supports scoping, as a property:
no sequence of operations lets one tenant read, query, list or count another's events."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfolio_core.adapters.file.event_store import FileEventStore
from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports import (
    EventQuery,
    EventStoreCapability,
    NewEvent,
    NotFoundError,
    TenantRequiredError,
    supports,
    tenant_scope,
)
from tests.support.postgres import drop_tables

Factory = Callable[[], Any]


@pytest.fixture(params=["memory", "file", "sqlite", "postgres"])
def make_scoped(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    counter = itertools.count()
    kind = request.param
    if kind == "memory":
        yield lambda: MemoryEventStore(tenant_scoped=True)
    elif kind == "file":
        yield lambda: FileEventStore(
            tmp_path / f"e{next(counter)}.log", fsync="never", tenant_scoped=True
        )
    elif kind == "sqlite":
        yield lambda: SQLiteEventStore(tmp_path / f"e{next(counter)}.db", tenant_scoped=True)
    else:
        url = request.getfixturevalue("postgres_url")
        prefix = request.getfixturevalue("unique_name")
        tables: list[str] = []

        def make() -> PostgresEventStore:
            tables.append(f"{prefix}_ten{next(counter)}")
            return PostgresEventStore(url, table=tables[-1], tenant_scoped=True, pool_size=1)

        yield make
        drop_tables(url, tables)


ops = st.lists(
    st.tuples(
        st.sampled_from(["A", "B"]),
        st.sampled_from(["append", "read", "read_all", "query", "count"]),
        st.sampled_from(["s1", "s2", "shared"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=ops)
def test_no_tenant_sees_another(make_scoped: Factory, script: list[tuple[str, str, str]]) -> None:
    async def run() -> None:
        store = make_scoped()
        assert supports(store, EventStoreCapability.TENANT_SCOPED)
        await store.start() if hasattr(store, "start") else None
        model: dict[str, list[tuple[str, str]]] = {"A": [], "B": []}  # tenant -> (stream, id)
        try:
            for n, (tenant, op, stream) in enumerate(script):
                mine = model[tenant]
                with tenant_scope(tenant):
                    if op == "append":
                        e = NewEvent("T", {"owner": tenant}, {"owner": tenant}, id=f"{tenant}{n}")
                        r = await store.append(stream, [e])
                        mine.append((stream, e.id))
                        assert r.positions == (len(mine),), "positions leak other tenants"
                    elif op == "read":
                        want = [i for s, i in mine if s == stream]
                        if not want:
                            with pytest.raises(NotFoundError):
                                await store.read(stream)
                        else:
                            assert [e.id for e in await store.read(stream)] == want
                    elif op == "read_all":
                        assert [e.id for e in await store.read_all()] == [i for _, i in mine]
                    elif op == "query":
                        other = "B" if tenant == "A" else "A"
                        for q in (
                            EventQuery(data={"owner": other}),
                            EventQuery(metadata={"owner": other}),
                            EventQuery(streams=frozenset({stream}), types=frozenset({"T"})),
                        ):
                            got = await store.query(q)
                            assert all(e.data["owner"] == tenant for e in got)
                    else:
                        assert len(await store.query(EventQuery())) == len(mine)
            with pytest.raises(TenantRequiredError):
                await store.read_all()
            with pytest.raises(TenantRequiredError):
                await store.append("s1", [NewEvent("T")])
        finally:
            await store.aclose()

    asyncio.run(run())
