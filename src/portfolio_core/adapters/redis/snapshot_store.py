"""SnapshotStore on Redis: one hash per stream, saved by a script that keeps the higher version.

The comparison and the write run in one Lua script (atomic on the server), so concurrent
savers from any number of processes cannot replace a newer snapshot with an older one.
Durability is the server's (AOF/RDB settings).
"""

from __future__ import annotations

from typing import ClassVar

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.cache_keys import check_namespace
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.snapshots import (
    DEFAULT_MAX_SNAPSHOT_BYTES,
    PORT,
    decode_snapshot,
    encode_snapshot,
    validate_stream,
)
from portfolio_core.adapters._shared.urls import check_url
from portfolio_core.adapters.redis._client import Unavailable
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.snapshot_store import Snapshot, SnapshotStoreCapability

__all__ = ["RedisSnapshotStore", "RedisSnapshotStoreConfig"]

_SAVE = """
local stored = redis.call('HGET', KEYS[1], 'v')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'b', ARGV[2])
return 1
"""


class RedisSnapshotStoreConfig(BaseModel):
    """Configuration of `RedisSnapshotStore` (``redis`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    namespace: str = "portfolio"
    max_snapshot_bytes: int = Field(DEFAULT_MAX_SNAPSHOT_BYTES, gt=0)


class RedisSnapshotStore(Configurable):
    """Snapshots in Redis under ``<namespace>:snap:<stream>``, shared by every process."""

    config_model: ClassVar[type[BaseModel]] = RedisSnapshotStoreConfig
    capabilities = declare(SnapshotStoreCapability.PERSISTENT, SnapshotStoreCapability.SHARED)

    def __init__(
        self,
        url: str | SecretStr = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "portfolio",
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
    ) -> None:
        self.namespace = check_namespace(namespace)
        self.max_snapshot_bytes = max_snapshot_bytes
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        check_url(raw, port=PORT)
        try:
            self._client: aioredis.Redis = aioredis.Redis.from_url(raw, socket_connect_timeout=5)
        except ValueError:
            raise InvalidInputError(
                "url is not a valid Redis URL (not shown: it may hold a password)",
                field="url",
                port=PORT,
            ) from None
        self._save = self._client.register_script(_SAVE)

    def __repr__(self) -> str:
        return f"RedisSnapshotStore(namespace={self.namespace!r})"

    def _key(self, stream: str) -> str:
        return f"{self.namespace}:snap:{stream}"

    async def save(self, snapshot: Snapshot) -> bool:
        stream, version, body = encode_snapshot(snapshot, self.max_snapshot_bytes)
        with Unavailable("Redis failed", port=PORT):
            stored = await self._save(keys=[self._key(stream)], args=[version, body])
        return bool(stored)

    async def load(self, stream: str) -> Snapshot | None:
        validate_stream(stream)
        with Unavailable("Redis failed", port=PORT):
            body = await self._client.hget(self._key(stream), "b")
        if body is None:
            return None
        return decode_snapshot(stream, body, self._key(stream))

    async def delete(self, stream: str) -> None:
        validate_stream(stream)
        with Unavailable("Redis failed", port=PORT):
            await self._client.delete(self._key(stream))

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        await self._client.aclose()
