"""The Redis snapshot store passes the SnapshotStore contract suite against a real server."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from portfolio_core.adapters.redis.snapshot_store import RedisSnapshotStore
from portfolio_core.testing.contracts.snapshot_store import SnapshotStoreContract


class TestRedisSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def make_adapter(
        self, redis_url: str, unique_name: str
    ) -> Iterator[Callable[[], RedisSnapshotStore]]:
        counter = itertools.count()
        namespaces: list[str] = []

        def make() -> RedisSnapshotStore:
            namespaces.append(f"{unique_name}-{next(counter)}")
            return RedisSnapshotStore(redis_url, namespace=namespaces[-1])

        yield make
        import redis

        client = redis.Redis.from_url(redis_url)
        for namespace in namespaces:
            keys = list(client.scan_iter(f"{namespace}:snap:*"))
            if keys:
                client.delete(*keys)
        client.close()
