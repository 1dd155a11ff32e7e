"""The conformance kit, unchanged, on remote ConfigStore and JobQueue adapters reaching a
real uvicorn server on 127.0.0.1.

Every factory call builds a fresh adapter inside the server (memory, or SQLite on a file),
registers it under a new entry name and returns a remote adapter addressing it. Options the
kit passes to factories (``schemas``, ``clock``) configure the served adapter: the kit's clock
then drives the served queue's leases and schedules, across the network.

The portal here accepts bodies of 4 MiB: a config value may be up to 1 MiB (the store's own
limit, which the kit checks) and must fit in one request with its envelope.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
from portfolio_core.adapters.remote import RemoteConfigStore, RemoteJobQueue
from portfolio_core.adapters.sql.config_store import SQLiteConfigStore
from portfolio_core.adapters.sql.sqlite_job_queue import SQLiteJobQueue
from portfolio_core.portal import PortalConfig
from portfolio_core.ports import ConfigStore, JobQueue
from portfolio_core.testing.contracts.config_store import ConfigStoreContract
from portfolio_core.testing.contracts.job_queue import JobQueueContract
from tests.portal.served import ServedRegistry


@pytest.fixture(scope="module")
def served() -> Iterator[ServedRegistry]:
    server = ServedRegistry(PortalConfig.model_validate({"limits": {"max_body_bytes": 4 << 20}}))
    yield server
    server.stop()


class TestRemoteConfigStoreOverHttp(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make(schemas: dict[str, object] | None = None) -> RemoteConfigStore:
            name = served.add(ConfigStore, lambda: MemoryConfigStore(schemas=schemas))
            return RemoteConfigStore(served.address(name))

        return make


class TestRemoteConfigStoreOverWebSocket(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make(schemas: dict[str, object] | None = None) -> RemoteConfigStore:
            name = served.add(ConfigStore, lambda: MemoryConfigStore(schemas=schemas))
            return RemoteConfigStore(served.address(name, "ws"))

        return make


class TestRemoteSQLiteConfigStore(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry, tmp_path: Path) -> Iterator[Callable[..., Any]]:
        built: list[SQLiteConfigStore] = []
        numbers = itertools.count()

        def make(schemas: dict[str, object] | None = None) -> RemoteConfigStore:
            path = tmp_path / f"config-{next(numbers)}.db"

            def build() -> SQLiteConfigStore:
                store = SQLiteConfigStore(path, schemas=schemas)
                built.append(store)
                return store

            return RemoteConfigStore(served.address(served.add(ConfigStore, build), "ws"))

        yield make
        for store in built:
            served.run(store.aclose())


class TestRemoteJobQueueOverHttp(JobQueueContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make(*, clock: Callable[[], float]) -> RemoteJobQueue:
            name = served.add(JobQueue, lambda: MemoryJobQueue(clock=clock, poll_interval=0.01))
            return RemoteJobQueue(served.address(name))

        return make


class TestRemoteJobQueueOverWebSocket(JobQueueContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry) -> Callable[..., Any]:
        def make(*, clock: Callable[[], float]) -> RemoteJobQueue:
            name = served.add(JobQueue, lambda: MemoryJobQueue(clock=clock, poll_interval=0.01))
            return RemoteJobQueue(served.address(name, "ws"))

        return make


class TestRemoteSQLiteJobQueue(JobQueueContract):
    @pytest.fixture
    def make_adapter(self, served: ServedRegistry, tmp_path: Path) -> Iterator[Callable[..., Any]]:
        built: list[SQLiteJobQueue] = []
        numbers = itertools.count()

        def make(*, clock: Callable[[], float]) -> RemoteJobQueue:
            path = tmp_path / f"jobs-{next(numbers)}.db"

            def build() -> SQLiteJobQueue:
                queue = SQLiteJobQueue(path, clock=clock, poll_interval=0.01)
                built.append(queue)
                return queue

            return RemoteJobQueue(served.address(served.add(JobQueue, build)))

        yield make
        for queue in built:
            served.run(queue.aclose())
