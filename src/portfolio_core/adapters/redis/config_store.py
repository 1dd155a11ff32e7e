"""ConfigStore in Redis: every version is one entry of a Redis stream, shared by every
process that reaches the server.

Keys, under ``<namespace>:cfg:``: ``v`` holds the current version, ``log`` is a stream with
one entry per version, whose id is ``<version>-1`` and whose field ``b`` is the change set
as JSON. A version is committed by one Lua script (check the expected version, increment,
``XADD``), so batches are atomic and versions are assigned in commit order. Each process
keeps a mirror of the log and catches it up with ``XRANGE`` from the last version it has;
watchers wait with ``XREAD BLOCK`` from the last version they delivered, so a watcher whose
connection drops catches up from there when the server is reachable again: nothing is
skipped. The adapter never trims the stream (history is never rewritten).

A version's time is ``wall_clock()`` (``time.time`` by default) of the committing process,
held by the script at the latest entry's time when that clock is behind it, so times never
decrease along the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.cache_keys import check_namespace
from portfolio_core.adapters._shared.config_store import (
    DEFAULT_MAX_VALUE_BYTES,
    Draft,
    LogConfigStore,
    StoredSet,
    decode_version,
    encode_set,
)
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters.redis._client import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    Unavailable,
    open_client,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.config_store import ConfigStoreCapability
from portfolio_core.ports.errors import (
    StaleVersionError,
)

__all__ = ["RedisConfigStore", "RedisConfigStoreConfig"]

PORT = "ConfigStore"

# KEYS: version key, stream key. ARGV: expected version (-1: none), the change set's JSON
# between its leading '{"v":N,' and its '"at":T' (the script puts the version it assigns
# and the time there), the time (microseconds, decimal digits), the JSON after the time.
# The time is held at the latest entry's when the caller's clock stepped back; times are
# compared as digit strings (Lua numbers are doubles).
_COMMIT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local expected = tonumber(ARGV[1])
if expected >= 0 and expected ~= current then
  return {0, current}
end
local at = ARGV[3]
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if last then
  local body = last[2][2]
  local before = body and string.match(body, ',"at":(%d+),"rb":')
  if before and (#before > #at or (#before == #at and before > at)) then
    at = before
  end
end
local version = current + 1
redis.call('SET', KEYS[1], version)
redis.call('XADD', KEYS[2], version .. '-1', 'b',
  '{"v":' .. version .. ',' .. ARGV[2] .. '"at":' .. at .. ARGV[4])
return {1, version}
"""


class RedisConfigStoreConfig(BaseModel):
    """Configuration of `RedisConfigStore` (``redis`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    namespace: str = "portfolio"
    schemas: dict[str, str] = Field(default_factory=dict)
    max_value_bytes: int = Field(DEFAULT_MAX_VALUE_BYTES, gt=0)
    poll_interval: float = Field(5.0, gt=0)
    connect_timeout: float = Field(DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(DEFAULT_CALL_TIMEOUT, gt=0)


class RedisConfigStore(LogConfigStore, Configurable):
    """Config store in Redis (a stream per store), shared by many processes and machines.

    ``poll_interval`` bounds how long a watcher's ``XREAD BLOCK`` waits before it checks
    again (new versions wake it at once; at most half of ``call_timeout``). Connection
    errors become UnavailableError; a watcher retries with backoff and resumes where it was.
    Opening a connection takes at most ``connect_timeout`` seconds and a reply at most
    ``call_timeout``: past either, UnavailableError (a silent server cannot hang a caller).
    """

    config_model: ClassVar[type[BaseModel]] = RedisConfigStoreConfig
    capabilities = declare(
        ConfigStoreCapability.PERSISTENT,
        ConfigStoreCapability.SCHEMAS,
        ConfigStoreCapability.SHARED,
    )
    _local = False

    def __init__(
        self,
        url: str | SecretStr = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "portfolio",
        schemas: Mapping[str, object] | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        poll_interval: float = 5.0,
        client: aioredis.Redis | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(schemas=schemas, max_value_bytes=max_value_bytes)
        self._wall_clock = wall_clock
        self.namespace = check_namespace(namespace)
        self.poll_interval = poll_interval
        self._block = min(poll_interval, call_timeout / 2)  # a blocked read ends before its timeout
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        self._owns_client = client is None
        if client is None:
            client = open_client(
                raw, connect_timeout=connect_timeout, call_timeout=call_timeout, port=PORT
            )
        self._client: aioredis.Redis = client
        self._version_key = f"{self.namespace}:cfg:v"
        self._stream_key = f"{self.namespace}:cfg:log"
        self._script = self._client.register_script(_COMMIT)
        self._sync_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RedisConfigStore(namespace={self.namespace!r})"

    def _stored(self, entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> StoredSet:
        ident = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        version = int(ident.split("-", 1)[0])
        return decode_version(
            fields.get(b"b"),
            version,
            what=f"config stream {self._stream_key!r}: the entry",
            location=self._stream_key,
        )

    def _add_entries(self, entries: Sequence[Any]) -> None:
        for entry_id, fields in entries:
            stored = self._stored(entry_id, fields)
            if stored.version == self._log.version + 1:
                self._add(stored)

    async def _sync(self) -> None:
        async with self._sync_lock:
            with Unavailable("Redis failed", port=PORT):
                entries = await self._client.xrange(
                    self._stream_key, min=f"{self._log.version + 1}-0", max="+"
                )
            self._add_entries(entries or [])

    async def _commit(self, draft: Draft) -> int:
        at = int(self._wall_clock() * 1_000_000)
        body = encode_set(draft.stored(0, at))
        head = '{"v":0,'  # encode_set writes the version first: the script replaces it
        # ... and the time just before rollback_of, its last field: the script may raise it
        middle, _, tail = body[len(head) :].rpartition(f'"at":{at},"rb":')
        with Unavailable("Redis failed", port=PORT):
            ok, version = await self._script(
                keys=[self._version_key, self._stream_key],
                args=[
                    -1 if draft.expected is None else draft.expected,
                    middle,
                    str(at),
                    ',"rb":' + tail,
                ],
            )
        if not ok:
            raise StaleVersionError(-1 if draft.expected is None else draft.expected, int(version))
        await self._sync()
        return int(version)

    async def _wait(self, event: asyncio.Event, after: int) -> None:
        """Block on the stream after ``after`` (new entries wake it), or the store closing."""
        reading = asyncio.ensure_future(
            self._client.xread(
                {self._stream_key: f"{after}-1"},
                count=100,
                block=max(1, int(self._block * 1000)),
            )
        )
        closing = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({reading, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reading, closing):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        if reading.done() and not reading.cancelled() and reading.exception() is None:
            result: Any = reading.result()
            for _stream, entries in result or []:
                async with self._sync_lock:
                    self._add_entries(entries)
        elif reading.done() and not reading.cancelled():
            await asyncio.sleep(0.05)  # the connection failed: the loop's sync retries

    async def ping(self) -> None:
        with Unavailable("Redis failed", port=PORT):
            await self._client.ping()

    async def _close(self) -> None:
        if self._owns_client:
            await self._client.aclose()
