"""The conformance kit, unchanged, on remote adapters reaching a real uvicorn server.

Every factory call builds a fresh adapter inside the server (the memory adapters, a SQLite
event store, a Redis cache when a server is configured), registers it under a new entry name
and returns a remote adapter addressing it. Options the kit passes to factories (``clock``,
``tenant_scoped``, ``max_entries``, ``quotas``) configure the served adapter: the kit's clock
then drives the server's expiry, across the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.memory.cache import MemoryCache
from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM
from portfolio_core.adapters.memory.stream import MemoryStream
from portfolio_core.adapters.memory.tenant import MemoryTenant
from portfolio_core.adapters.remote import (
    RemoteCache,
    RemoteEventStore,
    RemoteLLM,
    RemotePipeline,
    RemoteStream,
    RemoteTenant,
)
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports import LLM, Cache, EventStore, Pipeline, Stream, Tenant
from portfolio_core.testing.contracts.cache import CacheContract
from portfolio_core.testing.contracts.event_store import EventStoreContract
from portfolio_core.testing.contracts.llm import LLMContract
from portfolio_core.testing.contracts.pipeline import PipelineContract
from portfolio_core.testing.contracts.stream import StreamContract
from portfolio_core.testing.contracts.tenant import TenantContract
from tests.portal.served import ServedRegistry
from tests.testing.adapters import SequencePipeline


class TestRemoteCacheOverHttp(CacheContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make(
            clock: Callable[[], float] = time.monotonic,
            tenant_scoped: bool = False,
            max_entries: int = 10_000,
        ) -> RemoteCache:
            name = served.add(
                Cache,
                lambda: MemoryCache(max_entries, clock=clock, tenant_scoped=tenant_scoped),
            )
            return RemoteCache(served.address(name))

        return make


class TestRemoteEventStoreOverWebSocket(EventStoreContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make() -> RemoteEventStore:
            name = served.add(EventStore, MemoryEventStore)
            return RemoteEventStore(served.address(name, "ws"))

        return make


class TestRemoteSQLiteEventStoreOverHttp(EventStoreContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry, tmp_path: Path) -> Iterator[Callable[..., Any]]:
        built: list[SQLiteEventStore] = []

        def make() -> RemoteEventStore:
            path = tmp_path / f"events-{len(built)}.db"

            def build() -> SQLiteEventStore:
                store = SQLiteEventStore(path)
                built.append(store)
                return store

            name = served.add(EventStore, build)
            return RemoteEventStore(served.address(name))

        yield make
        for store in built:
            served.run(store.aclose())


class TestRemoteStream(StreamContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make(
            clock: Callable[[], float] = time.monotonic, tenant_scoped: bool = False
        ) -> RemoteStream:
            name = served.add(
                Stream, lambda: MemoryStream(clock=clock, tenant_scoped=tenant_scoped)
            )
            return RemoteStream(served.address(name))

        return make


class TestRemoteTenant(TenantContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make(
            quotas: dict[str, str] | None = None,
            tenant_config: dict[str, dict[str, Any]] | None = None,
        ) -> RemoteTenant:
            # the served adapter has the overrides; the remote one cannot apply them in its
            # synchronous with_tenant(), so it does not declare tenant.config_overrides
            name = served.add(
                Tenant, lambda: MemoryTenant(quotas=quotas, tenant_config=tenant_config)
            )
            return RemoteTenant(served.address(name))

        return make


class TestRemoteRedisCache(CacheContract):
    """A Redis cache served by the portal: shared state in a real engine, reached remotely."""

    @pytest.fixture
    def make_adapter(
        self, served: ServedRegistry, redis_url: str, unique_name: str
    ) -> Iterator[Callable[..., Any]]:
        from portfolio_core.adapters.redis.cache import RedisCache

        built: list[RedisCache] = []

        def make(tenant_scoped: bool = False) -> RemoteCache:
            def build() -> RedisCache:
                cache = RedisCache(
                    redis_url,
                    namespace=f"{unique_name}.{len(built)}",
                    tenant_scoped=tenant_scoped,
                )
                built.append(cache)
                return cache

            name = served.add(Cache, build)
            return RemoteCache(served.address(name, "ws"))

        yield make
        for cache in built:
            served.run(cache.aclose())
        served.run(_drop_redis_keys(redis_url, unique_name))


async def _drop_redis_keys(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            await client.delete(key)
    finally:
        await client.aclose()


class TestRemoteLLM(LLMContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make() -> RemoteLLM:
            name = served.add(LLM, lambda: SimulatedLLM(["Hello there, friend."]))
            return RemoteLLM(served.address(name))

        return make


class TestRemotePipeline(PipelineContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make() -> RemotePipeline:
            name = served.add(Pipeline, SequencePipeline)
            return RemotePipeline(served.address(name))

        return make

    @pytest.fixture
    def pipeline_inputs(self) -> dict[str, Any]:
        return {"text": "hello"}
