"""Cache in Redis: shared by every process that reaches the server, native TTLs, one round
trip for ``get_many`` and ``put_many``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.cache_keys import (
    check_items,
    check_key,
    check_namespace,
    check_ttl,
    scope,
    tenant_ttl,
)
from portfolio_core.adapters._shared.codec import JsonCodec
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters.redis._client import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    Unavailable,
    open_client,
)
from portfolio_core.ports.cache import CacheCapability, Codec
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import InvalidInputError

__all__ = ["RedisCache", "RedisCacheConfig"]

_SCAN_BATCH = 500


class RedisCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    namespace: str = "portfolio"
    tenant_scoped: bool = False
    default_ttl: float | None = Field(default=None, gt=0)
    connect_timeout: float = Field(default=DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(default=DEFAULT_CALL_TIMEOUT, gt=0)


def _bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data


def _tenant_part(tenant: str | None) -> str:
    if tenant is None:
        return "u"
    return "t." + base64.urlsafe_b64encode(tenant.encode()).decode().rstrip("=")


class RedisCache(Configurable):
    """Items as Redis strings at ``<namespace>:<tenant>:<key>``.

    The tenant segment is ``u`` when unscoped, else ``t.`` and the URL-safe base64 of the
    tenant id, so it holds no ``:`` nor glob character and one tenant's prefix is never a
    prefix of another's. Expiry is Redis's own (``SET ... PX``): the server's clock decides,
    so this adapter takes no ``clock``. ``get_many`` is one ``MGET``; ``put_many`` is one
    ``MULTI``/``EXEC`` pipeline (all items or none). ``clear``, ``keys`` and ``count`` walk
    the namespace with ``SCAN`` (never ``KEYS``, never ``FLUSHDB``). Connection errors become
    `UnavailableError`; the URL's password never appears in reprs or errors.

    Opening a connection takes at most ``connect_timeout`` seconds and a reply at most
    ``call_timeout``: past either, UnavailableError (a silent server cannot hang a caller).
    A connection the server closed is replaced and the command sent again on a fresh one.
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        CacheCapability.TTL,
        CacheCapability.PERSISTENT,
        CacheCapability.SHARED,
        CacheCapability.ENUMERATE,
        CacheCapability.TENANT_SCOPED,
    )
    config_model: ClassVar[type[BaseModel]] = RedisCacheConfig

    def __init__(
        self,
        url: str | SecretStr = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "portfolio",
        tenant_scoped: bool = False,
        default_ttl: float | None = None,
        codec: Codec | None = None,
        client: aioredis.Redis | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        self.namespace = check_namespace(namespace)
        self.tenant_scoped = tenant_scoped
        self.default_ttl = check_ttl(default_ttl)
        self._codec: Codec = codec if codec is not None else JsonCodec()
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        self._owns_client = client is None
        if client is None:
            client = open_client(
                raw, connect_timeout=connect_timeout, call_timeout=call_timeout, port="Cache"
            )
        self._client: aioredis.Redis = client

    def __repr__(self) -> str:
        return f"RedisCache(namespace={self.namespace!r}, tenant_scoped={self.tenant_scoped})"

    async def ping(self) -> None:
        with Unavailable("redis unavailable", port=None):
            await self._client.ping()

    async def aclose(self) -> None:
        """Close the connection pool this adapter opened (not a client passed in). Idempotent."""
        if self._owns_client:
            await self._client.aclose()

    # -- helpers ---------------------------------------------------------------------------------

    def _prefix(self) -> str:
        return f"{self.namespace}:{_tenant_part(scope(self.tenant_scoped))}:"

    def _ttl_ms(self, ttl: float | None) -> int | None:
        ttl = tenant_ttl(check_ttl(ttl), self.tenant_scoped)
        ttl = ttl if ttl is not None else self.default_ttl
        return None if ttl is None else max(1, round(ttl * 1000))

    async def _scan(self, prefix: str) -> AsyncIterator[list[bytes | str]]:
        cursor = 0
        while True:
            cursor, batch = await self._client.scan(cursor, match=prefix + "*", count=_SCAN_BATCH)
            if batch:
                yield batch
            if cursor == 0:
                return

    # -- the port --------------------------------------------------------------------------------

    async def get(self, key: str) -> Any | None:
        name = self._prefix() + check_key(key)
        with Unavailable("redis get failed", port=None):
            data = await self._client.get(name)
        return None if data is None else self._codec.decode(_bytes(data))

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        name = self._prefix() + check_key(key)
        px = self._ttl_ms(ttl)
        blob = self._codec.encode(value)
        with Unavailable("redis set failed", port=None):
            await self._client.set(name, blob, px=px)

    async def delete(self, key: str) -> bool:
        name = self._prefix() + check_key(key)
        with Unavailable("redis delete failed", port=None):
            return bool(await self._client.delete(name))

    async def clear(self) -> None:
        prefix = self._prefix()
        with Unavailable("redis clear failed", port=None):
            async for batch in self._scan(prefix):
                await self._client.unlink(*batch)

    async def exists(self, key: str) -> bool:
        name = self._prefix() + check_key(key)
        with Unavailable("redis exists failed", port=None):
            return bool(await self._client.exists(name))

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        prefix = self._prefix()
        if isinstance(keys, str):
            raise InvalidInputError("get_many takes a sequence of keys, not a str", field="keys")
        wanted = list(dict.fromkeys(check_key(k) for k in keys))
        if not wanted:
            return {}
        with Unavailable("redis mget failed", port=None):
            values = await self._client.mget([prefix + k for k in wanted])
        return {
            k: self._codec.decode(_bytes(v))
            for k, v in zip(wanted, values, strict=True)
            if v is not None
        }

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        prefix = self._prefix()
        check_items(items)
        px = self._ttl_ms(ttl)
        blobs = {prefix + key: self._codec.encode(value) for key, value in items.items()}
        if not blobs:
            return
        with Unavailable("redis put_many failed", port=None):
            async with self._client.pipeline(transaction=True) as pipe:
                for name, blob in blobs.items():
                    pipe.set(name, blob, px=px)
                await pipe.execute()

    # -- optional parts ---------------------------------------------------------------------------

    async def keys(self) -> list[str]:
        prefix = self._prefix()
        out: list[str] = []
        with Unavailable("redis scan failed", port=None):
            async for batch in self._scan(prefix):
                out.extend(_text(name)[len(prefix) :] for name in batch)
        return list(dict.fromkeys(out))

    async def count(self) -> int:
        return len(await self.keys())
