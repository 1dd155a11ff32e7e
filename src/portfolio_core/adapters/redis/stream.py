"""Stream over Redis Streams: consumer groups, acknowledgement and redelivery across processes.

Semantics beyond the port's contract:

* Each source is one Redis stream key, ``<namespace>:s:<source>`` (or
  ``<namespace>:t:<tenant>:<source>`` when tenant scoped). Entries hold one field ``p``: the
  payload as JSON text. Ids are Redis entry ids (``"1700000000000-0"``).
* Plain readers (no group) use ``XREAD`` from the start of the stream; groups use
  ``XREADGROUP`` (a group is created at id 0 by its first read, so it sees all history),
  ``XACK`` and ``XAUTOCLAIM``. Before fetching new entries a group reader claims entries that
  have been pending at least ``claim_after`` seconds (server time), whoever holds them: a
  consumer that died is replaced by any live one. Closing a group iterator marks its
  consumer's pending entries idle, so they are redelivered at once.
* Backpressure counts groups only: a writer waits (polling every ``poll_interval`` seconds)
  while some group of the sink has ``buffer_size`` or more entries not yet delivered to it or
  not yet acknowledged (``lag + pending``). Plain readers are invisible to the server and do
  not hold writers back; a sink without groups never makes a writer wait.
* The adapter never trims: entries stay in Redis after every group acknowledged them
  (trim with ``XTRIM`` or let keys expire if you need to).
* ``buffer_size`` is also how many entries a reader fetches per round trip.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, ClassVar, TypeVar, cast

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from redis import exceptions as redis_errors

from portfolio_core.adapters._shared import stream as shared
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters.redis._client import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    check_redis_url,
    open_client,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import (
    InvalidInputError,
    PortError,
    PortTimeoutError,
    UnavailableError,
)
from portfolio_core.ports.stream import OnError, StreamCapability, StreamMessage, StreamOptions

__all__ = ["RedisStream", "RedisStreamConfig"]

T = TypeVar("T")
U = TypeVar("U")

_ID = re.compile(r"^\d+-\d+$")
_GLOB = re.compile(r"([*?\[\]\\])")
_FAR_PAST_MS = 10**12
"""Idle time given to a closed consumer's entries: claimable by any ``claim_after``."""
_RELEASE_BATCH = 1000
_RELEASE_MAX_BATCHES = 10_000


class RedisStreamConfig(BaseModel):
    """Configuration of `RedisStream`."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    namespace: str = "portfolio_core:stream"
    tenant_scoped: bool = False
    poll_interval: float = 0.02
    connect_timeout: float = Field(DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(DEFAULT_CALL_TIMEOUT, gt=0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _aw(value: Any) -> Any:
    return await cast(Awaitable[Any], value)


def _escape_tenant(tenant: str) -> str:
    return tenant.replace("%", "%25").replace(":", "%3A")


class RedisStream(shared.TransformingStream, Configurable):
    """Stream adapter over Redis Streams (redis-py asyncio).

    Construct with a URL (``RedisStream("redis://localhost:6379/0")``) or an existing
    ``redis.asyncio.Redis`` client (``RedisStream(client=...)``; the adapter then never closes
    it). The URL may hold a password: it never appears in reprs or errors.
    """

    capabilities = declare(
        StreamCapability.ACKNOWLEDGE,
        StreamCapability.PERSISTENT,
        StreamCapability.TENANT_SCOPED,
        StreamCapability.INSPECT,
    )
    config_model: ClassVar[type[BaseModel]] = RedisStreamConfig

    def __init__(
        self,
        url: str | SecretStr | None = None,
        *,
        client: aioredis.Redis | None = None,
        namespace: str = "portfolio_core:stream",
        tenant_scoped: bool = False,
        poll_interval: float = 0.02,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        if (url is None) == (client is None):
            raise InvalidInputError("pass exactly one of url or client", field="url")
        if not namespace:
            raise InvalidInputError("namespace must be non-empty", field="namespace")
        if poll_interval <= 0:
            raise InvalidInputError("poll_interval must be positive", field="poll_interval")
        if isinstance(url, SecretStr):
            url = url.get_secret_value()
        self._url = None if url is None else check_redis_url(url, port="Stream")
        self._client = client
        self._owns_client = client is None
        self.namespace = namespace
        self.tenant_scoped = tenant_scoped
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout

    def __repr__(self) -> str:
        return f"RedisStream(namespace={self.namespace!r}, tenant_scoped={self.tenant_scoped})"

    # -- lifecycle ---------------------------------------------------------------------------

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            assert self._url is not None  # noqa: S101  (set when no client is)
            self._client = open_client(
                self._url,
                connect_timeout=self.connect_timeout,
                call_timeout=self.call_timeout,
                port="Stream",
            )
        return self._client

    async def start(self) -> None:
        """Connect and check the server answers."""
        await self.ping()

    async def ping(self) -> None:
        """Raise ``UnavailableError`` unless the server answers."""
        await self._call(lambda r: r.ping())

    async def aclose(self) -> None:
        """Close the connection pool the adapter opened; idempotent."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- internals ---------------------------------------------------------------------------

    async def _call(
        self, op: Callable[[aioredis.Redis], Any], opts: StreamOptions | None = None
    ) -> Any:
        """Run one Redis command, translating driver errors; retried under ``on_error=retry``."""
        o = opts or shared.DEFAULT_OPTIONS
        attempts = 1 + (o.max_retries if o.on_error is OnError.RETRY else 0)
        for attempt in range(attempts):
            try:
                return await _aw(op(self._redis()))
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                if attempt + 1 >= attempts:
                    raise UnavailableError(
                        f"redis unavailable: {type(exc).__name__}", port="Stream"
                    ) from exc
                if o.retry_delay:
                    await asyncio.sleep(o.retry_delay)
            except redis_errors.ResponseError:
                raise
            except redis_errors.RedisError as exc:
                raise UnavailableError(f"redis error: {type(exc).__name__}", port="Stream") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _key(self, source: str, what: str = "source") -> str:
        shared.check_source(source, what)
        tenant = shared.scoped_tenant(self.tenant_scoped)
        if tenant is None:
            return f"{self.namespace}:s:{source}"
        return f"{self.namespace}:t:{_escape_tenant(tenant)}:{source}"

    def _prefix(self) -> str:
        tenant = shared.scoped_tenant(self.tenant_scoped)
        if tenant is None:
            return f"{self.namespace}:s:"
        return f"{self.namespace}:t:{_escape_tenant(tenant)}:"

    async def _ensure_group(self, key: str, group: str) -> None:
        try:
            await self._call(lambda r: r.xgroup_create(key, group, id="0", mkstream=True))
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise UnavailableError("redis refused XGROUP CREATE", port="Stream") from exc

    async def _unreleased(self, key: str) -> int:
        """Largest ``lag + pending`` over the groups of ``key`` (0 without groups)."""
        try:
            groups = await self._call(lambda r: r.xinfo_groups(key))
        except redis_errors.ResponseError:
            return 0  # no such key yet
        worst = 0
        for info in groups:
            fields = {_text(k): v for k, v in info.items()}
            lag = fields.get("lag")
            worst = max(worst, int(fields.get("pending") or 0) + int(lag or 0))
        return worst

    def _decode(self, source: str, entry_id: str, fields: Any) -> StreamMessage | InvalidInputError:
        try:
            data = {_text(k): v for k, v in (fields or {}).items()}
            raw = data["p"]
            payload = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        except (KeyError, ValueError, UnicodeDecodeError, AttributeError) as exc:
            error = InvalidInputError(
                f"entry {entry_id} of source {source!r} is not a JSON payload in field 'p'",
                field="payload",
                port="Stream",
            )
            error.__cause__ = exc
            return error
        return StreamMessage(entry_id, payload, source)

    async def _decoded(
        self,
        source: str,
        key: str,
        entry_id: str,
        fields: Any,
        o: StreamOptions,
    ) -> StreamMessage | None:
        """Decode one entry under ``o.on_error``: the message, or ``None`` when skipped."""
        result = self._decode(source, entry_id, fields)
        attempts = o.max_retries if o.on_error is OnError.RETRY else 0
        for _ in range(attempts):
            if isinstance(result, StreamMessage):
                break
            if o.retry_delay:
                await asyncio.sleep(o.retry_delay)
            rows = await self._call(lambda r: r.xrange(key, entry_id, entry_id), o)
            result = self._decode(source, entry_id, rows[0][1] if rows else None)
        if isinstance(result, StreamMessage):
            return result
        if o.on_error is OnError.SKIP:
            group = o.group
            if group is not None:
                await self._call(lambda r: r.xack(key, group, entry_id), o)
            return None
        raise result

    # -- the port ----------------------------------------------------------------------------

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        """``XADD`` each item in order, waiting while a group of ``sink`` lags ``buffer_size``.

        Raises ``PortTimeoutError`` when a wait exceeds ``opts.timeout`` and
        ``InvalidInputError`` for a payload that is not JSON-compatible (items before either
        are written, none after).
        """
        o = opts or shared.DEFAULT_OPTIONS
        key = self._key(sink, "sink")
        loop = asyncio.get_running_loop()
        written = 0
        allowance = 0
        async for item in shared.iterate_items(items):
            text = json.dumps(shared.copy_payload(item, index=written), separators=(",", ":"))
            deadline = None if o.timeout is None else loop.time() + o.timeout
            while allowance <= 0:
                allowance = o.buffer_size - await self._unreleased(key)
                if allowance > 0:
                    break
                if deadline is not None and loop.time() >= deadline:
                    raise PortTimeoutError(
                        f"sink {sink!r} stayed full ({o.buffer_size} messages) for "
                        f"{o.timeout} s; {written} item(s) written",
                        timeout=o.timeout,
                        port="Stream",
                    )
                await asyncio.sleep(self.poll_interval)
            await self._call(lambda r, t=text: r.xadd(key, {"p": t}), o)  # type: ignore[misc]
            written += 1
            allowance -= 1
        return written

    def stream(
        self, source: str, opts: StreamOptions | None = None
    ) -> AsyncIterator[StreamMessage]:
        """Iterate ``source`` with ``XREAD`` (alone) or ``XREADGROUP`` (in ``opts.group``)."""
        o = opts or shared.DEFAULT_OPTIONS
        key = self._key(source)
        if o.group is None:
            return self._read_plain(source, key, o)
        return self._read_group(source, key, o)

    def _block_ms(self, deadline: float | None, cap: float | None) -> int:
        loop = asyncio.get_running_loop()
        waits = [x for x in (cap, None if deadline is None else deadline - loop.time()) if x]
        seconds = min(waits) if waits else 1.0
        # a blocked read ends well before the reply timeout would cut it
        return max(1, int(min(seconds, 1.0, self.call_timeout / 2) * 1000))

    async def _read_plain(
        self, source: str, key: str, o: StreamOptions
    ) -> AsyncIterator[StreamMessage]:
        loop = asyncio.get_running_loop()
        last = "0-0"
        buffer: deque[tuple[str, Any]] = deque()
        while True:
            deadline = None if o.timeout is None else loop.time() + o.timeout
            while not buffer:
                block = self._block_ms(deadline, None) if o.follow else None
                rows = await self._call(
                    lambda r, b=block, after=last: r.xread(  # type: ignore[misc]
                        {key: after}, count=o.buffer_size, block=b
                    ),
                    o,
                )
                for _name, entries in rows or []:
                    buffer.extend((_text(i), f) for i, f in entries)
                if buffer:
                    break
                if not o.follow:
                    return
                shared.check_deadline(deadline, loop.time(), source, o)
            entry_id, fields = buffer.popleft()
            last = entry_id
            message = await self._decoded(source, key, entry_id, fields, o)
            if message is not None:
                yield message

    async def _read_group(
        self, source: str, key: str, o: StreamOptions
    ) -> AsyncIterator[StreamMessage]:
        assert o.group is not None  # noqa: S101  (only called for group reads)
        group = o.group
        consumer = o.consumer or f"consumer-{uuid.uuid4().hex}"
        loop = asyncio.get_running_loop()
        idle_ms = int(o.claim_after * 1000)
        await self._ensure_group(key, group)
        buffer: deque[tuple[str, Any]] = deque()
        try:
            while True:
                deadline = None if o.timeout is None else loop.time() + o.timeout
                while not buffer:
                    claimed = await self._claim(key, group, consumer, idle_ms, o)
                    buffer.extend(claimed)
                    if buffer:
                        break
                    block = self._block_ms(deadline, o.claim_after) if o.follow else None
                    try:
                        rows = await self._call(
                            lambda r, b=block: r.xreadgroup(  # type: ignore[misc]
                                group, consumer, {key: ">"}, count=o.buffer_size, block=b
                            ),
                            o,
                        )
                    except redis_errors.ResponseError as exc:
                        if "NOGROUP" not in str(exc):
                            raise UnavailableError(
                                "redis refused XREADGROUP", port="Stream"
                            ) from exc
                        await self._ensure_group(key, group)
                        continue
                    for _name, entries in rows or []:
                        buffer.extend((_text(i), f) for i, f in entries)
                    if buffer:
                        break
                    if not o.follow:
                        return
                    shared.check_deadline(deadline, loop.time(), source, o)
                entry_id, fields = buffer.popleft()
                message = await self._decoded(source, key, entry_id, fields, o)
                if message is not None:
                    yield message
        finally:
            await self._release(key, group, consumer)

    async def _claim(
        self, key: str, group: str, consumer: str, idle_ms: int, o: StreamOptions
    ) -> list[tuple[str, Any]]:
        start = "0-0"
        for _ in range(_RELEASE_MAX_BATCHES):  # XAUTOCLAIM scans the whole PEL, a page a call
            try:
                reply = await self._call(
                    lambda r, s=start: r.xautoclaim(  # type: ignore[misc]
                        key, group, consumer, idle_ms, start_id=s, count=o.buffer_size
                    ),
                    o,
                )
            except redis_errors.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    await self._ensure_group(key, group)
                    return []
                raise UnavailableError("redis refused XAUTOCLAIM", port="Stream") from exc
            start = _text(reply[0])
            entries = [(_text(i), f) for i, f in reply[1] if f is not None]
            if entries or start == "0-0":
                return entries
        return []

    async def _release(self, key: str, group: str, consumer: str) -> None:
        """Make ``consumer``'s pending entries claimable at once (its iterator closed)."""
        start = "-"
        held = 0
        try:
            for _ in range(_RELEASE_MAX_BATCHES):
                rows = await self._call(
                    lambda r, s=start: r.xpending_range(  # type: ignore[misc]
                        key, group, s, "+", _RELEASE_BATCH, consumername=consumer
                    )
                )
                ids: list[Any] = [_text(row["message_id"]) for row in rows]
                held += len(ids)
                if ids:
                    await self._call(
                        lambda r, claim=ids: r.xclaim(  # type: ignore[misc]
                            key, group, consumer, 0, claim, idle=_FAR_PAST_MS, justid=True
                        )
                    )
                if len(ids) < _RELEASE_BATCH:
                    break
                start = f"({ids[-1]}"  # exclusive: the next batch starts after the last id
            if not held:  # holds nothing: drop the consumer so XINFO stays small
                await self._call(lambda r: r.xgroup_delconsumer(key, group, consumer))
        except (PortError, redis_errors.RedisError):
            return  # best effort: claim_after still redelivers them

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        """``XACK`` ``message`` for ``opts.group``; idempotent, unknown ids are ignored."""
        key = self._key(source)
        o, group = shared.ack_group(opts)
        if not isinstance(message.id, str) or not _ID.match(message.id):
            raise InvalidInputError(
                f"{message.id!r} is not a Redis stream entry id", field="message", port="Stream"
            )
        try:
            await self._call(lambda r: r.xack(key, group, message.id), o)
        except redis_errors.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise UnavailableError("redis refused XACK", port="Stream") from exc

    # -- INSPECT --------------------------------------------------------------------------------

    async def sources(self) -> list[str]:
        """Names of the current namespace's sources, sorted."""
        prefix = self._prefix()
        pattern = _GLOB.sub(r"\\\1", prefix) + "*"
        names: list[str] = []
        try:
            async for raw in self._redis().scan_iter(match=pattern, count=500, _type="STREAM"):
                names.append(_text(raw)[len(prefix) :])
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise UnavailableError("redis unavailable during SCAN", port="Stream") from exc
        return sorted(names)

    async def count(self, source: str) -> int:
        """Entries ``source`` holds (0 when it does not exist)."""
        key = self._key(source)
        return int(await self._call(lambda r: r.xlen(key)))
