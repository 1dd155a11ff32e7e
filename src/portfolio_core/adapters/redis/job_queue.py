"""JobQueue in Redis: sorted sets per queue, every change one Lua script (atomic)."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, cast

import redis.asyncio as aioredis
import redis.exceptions
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from portfolio_core.adapters._shared.cache_keys import check_namespace
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.job_queue import (
    EXPIRED,
    PORT,
    EnqueueWakeup,
    check_error,
    check_job_id,
    check_lease,
    check_limit,
    check_queue,
    check_reservation,
    check_reserve,
    check_retry_in,
    check_state,
    decode_payload,
    prepare,
    queued_state,
)
from portfolio_core.adapters.redis._client import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    Unavailable,
    open_client,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import ConflictError, NotFoundError, UnavailableError
from portfolio_core.ports.job_queue import (
    Job,
    JobCounts,
    JobQueueCapability,
    JobState,
    NewJob,
    Reservation,
    default_backoff,
)

__all__ = ["RedisJobQueue", "RedisJobQueueConfig"]

_FIELDS = (
    "queue", "task", "payload", "state", "priority", "attempts", "max_attempts", "run_at",
    "enqueued_at", "unique_key", "last_error", "lease_until", "token",
)  # fmt: skip

# Keys, for namespace N and queue Q:
#   N:seq               job id counter
#   N:job:ID            hash of the job's fields, plus "m": its member in the ready set
#   N:q:Q:ready         due jobs: score -priority, member "<run_at order key>:<id, 20 digits>"
#                       (equal scores sort by member: earlier run_at, then enqueue order)
#   N:q:Q:sched         jobs waiting for run_at: score run_at, member id
#   N:q:Q:queued        every queued job (ready or scheduled): score id
#   N:q:Q:leased        running jobs: score lease end, member id
#   N:q:Q:completed / :dead / :cancelled   score id
#   N:q:Q:unique        hash unique key -> id of its holder
_LUA_COMMON = """
local ns, q = ARGV[1], ARGV[2]
local qk = ns .. ':q:' .. q
local function fields(jk)
  return redis.call('HMGET', jk, 'queue', 'task', 'payload', 'state', 'priority', 'attempts',
    'max_attempts', 'run_at', 'enqueued_at', 'unique_key', 'last_error', 'lease_until', 'token')
end
local function free_key(jk, id)
  local u = redis.call('HGET', jk, 'unique_key')
  if u and redis.call('HGET', qk .. ':unique', u) == tostring(id) then
    redis.call('HDEL', qk .. ':unique', u)
  end
end
local function to_ready(jk, id)
  redis.call('ZADD', qk .. ':ready', -tonumber(redis.call('HGET', jk, 'priority')),
    redis.call('HGET', jk, 'm'))
end
local function held(id, token)
  local jk = ns .. ':job:' .. id
  local state = redis.call('HGET', jk, 'state')
  if not state then return nil, {'missing'} end
  if state ~= 'running' or redis.call('HGET', jk, 'token') ~= token then
    return nil, {'stale', state}
  end
  return jk, nil
end
"""

_ENQUEUE = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, now, then per job 8 values:
-- task, payload, priority, max_attempts, run_at, run_at order key, unique_key or '', due flag
local now = ARGV[3]
local ids = {}
local i = 4
while i <= #ARGV do
  local unique = ARGV[i + 6]
  local holder = false
  if unique ~= '' then holder = redis.call('HGET', qk .. ':unique', unique) end
  if holder then
    table.insert(ids, holder)
  else
    local id = redis.call('INCR', ns .. ':seq')
    local jk = ns .. ':job:' .. id
    local member = ARGV[i + 5] .. ':' .. string.format('%020d', id)
    redis.call('HSET', jk, 'queue', q, 'task', ARGV[i], 'payload', ARGV[i + 1], 'state', 'queued',
      'priority', ARGV[i + 2], 'attempts', 0, 'max_attempts', ARGV[i + 3], 'run_at', ARGV[i + 4],
      'enqueued_at', now, 'm', member)
    redis.call('ZADD', qk .. ':queued', id, id)
    if ARGV[i + 7] == '1' then
      redis.call('ZADD', qk .. ':ready', -tonumber(ARGV[i + 2]), member)
    else
      redis.call('ZADD', qk .. ':sched', ARGV[i + 4], id)
    end
    if unique ~= '' then
      redis.call('HSET', jk, 'unique_key', unique)
      redis.call('HSET', qk .. ':unique', unique, id)
    end
    table.insert(ids, tostring(id))
  end
  i = i + 8
end
return ids
"""
)

_RESERVE = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, now, limit, lease end, token prefix, expired message
local now, limit = ARGV[3], tonumber(ARGV[4])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', qk .. ':leased', '-inf', now)) do
  local jk = ns .. ':job:' .. id
  redis.call('ZREM', qk .. ':leased', id)
  redis.call('HDEL', jk, 'token', 'lease_until')
  local attempts = tonumber(redis.call('HGET', jk, 'attempts'))
  if attempts >= tonumber(redis.call('HGET', jk, 'max_attempts')) then
    redis.call('HSET', jk, 'state', 'dead', 'last_error', ARGV[7])
    redis.call('ZADD', qk .. ':dead', id, id)
    free_key(jk, id)
  else
    redis.call('HSET', jk, 'state', 'queued')
    redis.call('ZADD', qk .. ':queued', id, id)
    to_ready(jk, id)
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', qk .. ':sched', '-inf', now)) do
  redis.call('ZREM', qk .. ':sched', id)
  to_ready(ns .. ':job:' .. id, id)
end
local out = {}
local popped = redis.call('ZPOPMIN', qk .. ':ready', limit)
for i = 1, #popped, 2 do
  local id = tonumber(string.sub(popped[i], -20))
  local jk = ns .. ':job:' .. id
  local token = ARGV[6] .. id
  redis.call('HINCRBY', jk, 'attempts', 1)
  redis.call('HSET', jk, 'state', 'running', 'lease_until', ARGV[5], 'token', token)
  redis.call('ZREM', qk .. ':queued', id)
  redis.call('ZADD', qk .. ':leased', ARGV[5], id)
  table.insert(out, {tostring(id), fields(jk)})
end
return out
"""
)

_COMPLETE = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, id, token
local jk, err = held(ARGV[3], ARGV[4])
if not jk then return err end
redis.call('HSET', jk, 'state', 'completed')
redis.call('HDEL', jk, 'token', 'lease_until')
redis.call('ZREM', qk .. ':leased', ARGV[3])
redis.call('ZADD', qk .. ':completed', ARGV[3], ARGV[3])
return {'ok'}
"""
)

_FAIL = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, id, token, error, retry_at, retry_at order key, due flag
local id = ARGV[3]
local jk, err = held(id, ARGV[4])
if not jk then return err end
redis.call('ZREM', qk .. ':leased', id)
redis.call('HDEL', jk, 'token', 'lease_until')
redis.call('HSET', jk, 'last_error', ARGV[5])
local attempts = tonumber(redis.call('HGET', jk, 'attempts'))
if attempts >= tonumber(redis.call('HGET', jk, 'max_attempts')) then
  redis.call('HSET', jk, 'state', 'dead')
  redis.call('ZADD', qk .. ':dead', id, id)
  free_key(jk, id)
else
  redis.call('HSET', jk, 'state', 'queued', 'run_at', ARGV[6],
    'm', ARGV[7] .. ':' .. string.format('%020d', tonumber(id)))
  redis.call('ZADD', qk .. ':queued', id, id)
  if ARGV[8] == '1' then to_ready(jk, id) else redis.call('ZADD', qk .. ':sched', ARGV[6], id) end
end
return {'ok', fields(jk)}
"""
)

_EXTEND = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, id, token, lease end
local jk, err = held(ARGV[3], ARGV[4])
if not jk then return err end
redis.call('HSET', jk, 'lease_until', ARGV[5])
redis.call('ZADD', qk .. ':leased', ARGV[5], ARGV[3])
return {'ok', fields(jk)}
"""
)

_RELEASE = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, id, token
local id = ARGV[3]
local jk, err = held(id, ARGV[4])
if not jk then return err end
redis.call('ZREM', qk .. ':leased', id)
redis.call('HDEL', jk, 'token', 'lease_until')
redis.call('HINCRBY', jk, 'attempts', -1)
redis.call('HSET', jk, 'state', 'queued')
redis.call('ZADD', qk .. ':queued', id, id)
to_ready(jk, id)
return {'ok'}
"""
)

_RETRY = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, id, now, now order key
local id = ARGV[3]
local jk = ns .. ':job:' .. id
local state = redis.call('HGET', jk, 'state')
if not state then return {'missing'} end
if state == 'running' or state == 'completed' then return {'stale', state} end
local member = ARGV[5] .. ':' .. string.format('%020d', tonumber(id))
if state == 'dead' or state == 'cancelled' then
  local u = redis.call('HGET', jk, 'unique_key')
  if u then
    local holder = redis.call('HGET', qk .. ':unique', u)
    if holder and holder ~= id then return {'taken', holder} end
    redis.call('HSET', qk .. ':unique', u, id)
  end
  redis.call('ZREM', qk .. ':' .. state, id)
  redis.call('HSET', jk, 'state', 'queued', 'attempts', 0, 'run_at', ARGV[4], 'm', member)
  redis.call('ZADD', qk .. ':queued', id, id)
  to_ready(jk, id)
elseif tonumber(redis.call('HGET', jk, 'run_at')) > tonumber(ARGV[4]) then
  redis.call('ZREM', qk .. ':sched', id)
  redis.call('HSET', jk, 'run_at', ARGV[4], 'm', member)
  to_ready(jk, id)
end
return {'ok', fields(jk)}
"""
)

_CANCEL = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, id
local id = ARGV[3]
local jk = ns .. ':job:' .. id
local state = redis.call('HGET', jk, 'state')
if not state then return {'missing'} end
if state == 'cancelled' then return {'already'} end
if state == 'running' or state == 'completed' then return {'stale', state} end
if state == 'queued' then
  redis.call('ZREM', qk .. ':queued', id)
  redis.call('ZREM', qk .. ':sched', id)
  redis.call('ZREM', qk .. ':ready', redis.call('HGET', jk, 'm'))
else
  redis.call('ZREM', qk .. ':dead', id)
end
free_key(jk, id)
redis.call('HSET', jk, 'state', 'cancelled')
redis.call('ZADD', qk .. ':cancelled', id, id)
return {'ok'}
"""
)

_LIST_QUEUED = (
    _LUA_COMMON
    + """
-- ARGV: ns, queue, now, limit, want scheduled ('1') or available ('0')
local now, limit, want = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local out = {}
for _, id in ipairs(redis.call('ZRANGE', qk .. ':queued', 0, -1)) do
  if #out >= limit then break end
  local jk = ns .. ':job:' .. id
  if (tonumber(redis.call('HGET', jk, 'run_at')) > now) == want then
    table.insert(out, {id, fields(jk)})
  end
end
return out
"""
)


def order_key(x: float) -> str:
    """Sixteen hex digits that sort as the floats do (IEEE 754 bits, sign-adjusted)."""
    bits: int = struct.unpack(">Q", struct.pack(">d", x + 0.0))[0]
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


#: the per-queue sorted sets of which one is non-empty whenever the queue holds a job
_HOLDING = frozenset({"queued", "leased", "completed", "dead", "cancelled"})


class RedisJobQueueConfig(BaseModel):
    """Configuration of `RedisJobQueue` (``redis`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    namespace: str = "portfolio-jobs"
    poll_interval: float = Field(0.05, gt=0)
    connect_timeout: float = Field(DEFAULT_CONNECT_TIMEOUT, gt=0)
    call_timeout: float = Field(DEFAULT_CALL_TIMEOUT, gt=0)


class RedisJobQueue(Configurable):
    """Jobs as Redis hashes indexed by sorted sets per queue; every change is one Lua script,
    so it is atomic and many processes never hand out one job twice.

    A ``reserve`` takes back expired leases, moves due scheduled jobs to the ready set and
    pops the first ``limit`` (``ZPOPMIN``: priority, then run_at, then enqueue order) in one
    script. A waiting ``reserve`` looks again every ``poll_interval`` seconds. Times are this
    process's ``clock`` readings (``time.time``), passed to the scripts, so the kit can
    control them; keep the clocks of machines sharing a queue in sync. Keys live under
    ``<namespace>:`` and are built inside the scripts (a single Redis or a primary, not
    Redis Cluster). Connection errors become `UnavailableError`; a connection the
    server closed is replaced and the command sent again on a fresh one. Opening a connection
    takes at most ``connect_timeout`` seconds and a reply at most ``call_timeout``: past
    either, UnavailableError. The URL's password never appears in reprs or errors.
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        JobQueueCapability.PERSISTENT, JobQueueCapability.SHARED, JobQueueCapability.INSPECT
    )
    config_model: ClassVar[type[BaseModel]] = RedisJobQueueConfig

    def __init__(
        self,
        url: str | SecretStr = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "portfolio-jobs",
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
        client: aioredis.Redis | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        self.namespace = check_namespace(namespace)
        self._poll = poll_interval
        self._clock = clock
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        self._owns_client = client is None
        self._client: aioredis.Redis = (
            client
            if client is not None
            else open_client(
                raw, connect_timeout=connect_timeout, call_timeout=call_timeout, port=PORT
            )
        )
        register = self._client.register_script
        self._enqueue = register(_ENQUEUE)
        self._reserve = register(_RESERVE)
        self._complete = register(_COMPLETE)
        self._fail = register(_FAIL)
        self._extend = register(_EXTEND)
        self._release = register(_RELEASE)
        self._retry = register(_RETRY)
        self._cancel = register(_CANCEL)
        self._list_queued = register(_LIST_QUEUED)
        self._wakeup = EnqueueWakeup()

    def __repr__(self) -> str:
        return f"RedisJobQueue(namespace={self.namespace!r})"

    async def ping(self) -> None:
        with Unavailable("redis unavailable", port=PORT):
            await self._client.ping()

    async def aclose(self) -> None:
        """Close the connection pool this adapter opened (not a client passed in). Idempotent."""
        if self._owns_client:
            await self._client.aclose()

    # -- helpers ---------------------------------------------------------------------------------

    async def _run(self, script: Any, *args: Any) -> Any:
        try:
            return await script(args=[self.namespace, *args])
        except redis.exceptions.RedisError as exc:
            raise UnavailableError(
                f"redis job queue unavailable: {type(exc).__name__}", port=PORT
            ) from exc

    def _job(self, job_id: Any, values: Sequence[Any], now: float) -> Job:
        v = [_text(x) for x in values]
        if v[0] is None:
            raise NotFoundError(f"no job {job_id!r}", key=str(job_id), port=PORT)
        run_at = float(v[7] or 0.0)
        stored = v[3]
        return Job(
            id=str(job_id if not isinstance(job_id, bytes) else job_id.decode()),
            task=v[1] or "",
            payload=decode_payload(v[2] or "null"),
            queue=v[0],
            state=queued_state(run_at, now) if stored == "queued" else JobState(str(stored)),
            priority=int(v[4] or 0),
            attempts=int(v[5] or 0),
            max_attempts=int(v[6] or 1),
            run_at=run_at,
            enqueued_at=float(v[8] or 0.0),
            unique_key=v[9],
            last_error=v[10],
            lease_until=float(v[11]) if v[11] is not None else None,
        )

    def _check(self, result: Sequence[Any], job_id: str) -> Sequence[Any]:
        status = _text(result[0])
        if status == "missing":
            raise NotFoundError(f"no job {job_id!r}", key=job_id, port=PORT)
        if status == "stale":
            raise ConflictError(
                f"job {job_id} is no longer held by this reservation ({_text(result[1])}: its "
                "lease was taken back, or it was already finished)",
                port=PORT,
            )
        if status == "taken":
            raise ConflictError(
                f"job {_text(result[1])} now holds the unique key of job {job_id}", port=PORT
            )
        return result

    def _id(self, job_id: Any) -> str:
        text = check_job_id(job_id)
        return text if text.isdigit() and len(text) < 19 else "0"

    async def _queue_of(self, job_id: str) -> str:
        with Unavailable("redis unavailable", port=PORT):
            queue = await cast(
                Awaitable[Any],
                self._client.hget(f"{self.namespace}:job:{self._id(job_id)}", "queue"),
            )
        if queue is None:
            raise NotFoundError(f"no job {job_id!r}", key=str(job_id), port=PORT)
        return str(_text(queue))

    # -- producing -------------------------------------------------------------------------------

    async def enqueue(self, job: NewJob) -> str:
        return (await self.enqueue_many([job]))[0]

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        now = self._clock()
        prepared = [prepare(job, now) for job in jobs]
        ids: list[str] = []
        by_queue: dict[str, list[int]] = {}
        for index, p in enumerate(prepared):
            by_queue.setdefault(p.queue, []).append(index)
        out: list[str | None] = [None] * len(prepared)
        for queue, indexes in by_queue.items():
            args: list[Any] = [queue, repr(now)]
            for index in indexes:
                p = prepared[index]
                args += [
                    p.task, p.payload_json, p.priority, p.max_attempts, repr(p.run_at),
                    order_key(p.run_at), p.unique_key or "", "1" if p.run_at <= now else "0",
                ]  # fmt: skip
            got = await self._run(self._enqueue, *args)
            for index, job_id in zip(indexes, got, strict=True):
                out[index] = str(_text(job_id))
        ids = [i for i in out if i is not None]
        self._wakeup.notify()
        return ids

    # -- consuming -------------------------------------------------------------------------------

    async def _take(self, queue: str, limit: int, lease: float) -> list[Reservation]:
        now = self._clock()
        prefix = uuid.uuid4().hex + ":"
        got = await self._run(
            self._reserve, queue, repr(now), limit, repr(now + lease), prefix, EXPIRED
        )
        out = []
        for job_id, values in got:
            job = self._job(_text(job_id), values, now)
            out.append(Reservation(job, str(_text(values[12]))))
        return out

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        name, limit, lease, wait = check_reserve(queue, limit, lease, wait)
        return await self._wakeup.take_or_wait(
            lambda: self._take(name, limit, lease), wait=wait, poll=self._poll
        )

    async def complete(self, reservation: Reservation) -> None:
        check_reservation(reservation)
        job_id = self._id(reservation.job.id)
        result = await self._run(self._complete, reservation.job.queue, job_id, reservation.token)
        self._check(result, reservation.job.id)

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        check_reservation(reservation)
        message = check_error(error)
        delay = check_retry_in(retry_in)
        now = self._clock()
        retry_at = now + (default_backoff(reservation.job.attempts) if delay is None else delay)
        job_id = self._id(reservation.job.id)
        result = await self._run(
            self._fail,
            reservation.job.queue,
            job_id,
            reservation.token,
            message,
            repr(retry_at),
            order_key(retry_at),
            "1" if retry_at <= now else "0",
        )
        self._check(result, reservation.job.id)
        self._wakeup.notify()
        return self._job(job_id, result[1], now)

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        check_reservation(reservation)
        seconds = check_lease(lease)
        now = self._clock()
        job_id = self._id(reservation.job.id)
        result = await self._run(
            self._extend, reservation.job.queue, job_id, reservation.token, repr(now + seconds)
        )
        self._check(result, reservation.job.id)
        return Reservation(self._job(job_id, result[1], now), reservation.token)

    async def release(self, reservation: Reservation) -> None:
        check_reservation(reservation)
        job_id = self._id(reservation.job.id)
        result = await self._run(self._release, reservation.job.queue, job_id, reservation.token)
        self._check(result, reservation.job.id)
        self._wakeup.notify()

    # -- inspecting and managing -------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        key = self._id(job_id)
        with Unavailable("redis unavailable", port=PORT):
            values = await cast(
                Awaitable[Any], self._client.hmget(f"{self.namespace}:job:{key}", list(_FIELDS))
            )
        if values[0] is None:
            raise NotFoundError(f"no job {job_id!r}", key=str(job_id), port=PORT)
        return self._job(key, values, self._clock())

    async def list_jobs(self, queue: str, state: JobState, *, limit: int = 100) -> list[Job]:
        name = check_queue(queue)
        wanted = check_state(state)
        limit = check_limit(limit)
        now = self._clock()
        if wanted in (JobState.SCHEDULED, JobState.AVAILABLE):
            got = await self._run(
                self._list_queued,
                name,
                repr(now),
                limit,
                "1" if wanted is JobState.SCHEDULED else "0",
            )
            return [self._job(_text(i), values, now) for i, values in got]
        key = (
            f"{self.namespace}:q:{name}:{'leased' if wanted is JobState.RUNNING else wanted.value}"
        )
        with Unavailable("redis unavailable", port=PORT):
            members = await self._client.zrange(
                key, 0, -1 if wanted is JobState.RUNNING else limit - 1
            )
            ids = sorted(int(_text(m) or 0) for m in members)[:limit]
            async with self._client.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.hmget(f"{self.namespace}:job:{i}", list(_FIELDS))
                rows = await pipe.execute()
        return [self._job(i, values, now) for i, values in zip(ids, rows, strict=True)]

    async def retry(self, job_id: str) -> Job:
        key = self._id(job_id)
        queue = await self._queue_of(key)
        now = self._clock()
        result = self._check(
            await self._run(self._retry, queue, key, repr(now), order_key(now)), job_id
        )
        self._wakeup.notify()
        return self._job(key, result[1], now)

    async def cancel(self, job_id: str) -> bool:
        key = self._id(job_id)
        queue = await self._queue_of(key)
        result = await self._run(self._cancel, queue, key)
        if _text(result[0]) == "already":
            return False
        self._check(result, job_id)
        return True

    async def queues(self) -> list[str]:
        """The names of the queues holding at least one job, sorted (a SCAN of the
        keyspace for this namespace's queue keys: meant for an operator's view, not a hot
        path)."""
        prefix = f"{self.namespace}:q:"
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        names: set[str] = set()
        with Unavailable("redis unavailable", port=PORT):
            async for key in self._client.scan_iter(match=pattern, count=500):
                text = key.decode() if isinstance(key, bytes) else str(key)
                name, _, suffix = text[len(prefix) :].rpartition(":")
                if suffix in _HOLDING:
                    names.add(name)
        return sorted(names)

    async def counts(self, queue: str) -> JobCounts:
        name = check_queue(queue)
        now = repr(self._clock())
        qk = f"{self.namespace}:q:{name}"
        with Unavailable("redis unavailable", port=PORT):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zcard(f"{qk}:ready")
                pipe.zcount(f"{qk}:sched", "-inf", now)
                pipe.zcount(f"{qk}:sched", f"({now}", "+inf")
                pipe.zcard(f"{qk}:leased")
                pipe.zcard(f"{qk}:completed")
                pipe.zcard(f"{qk}:dead")
                pipe.zcard(f"{qk}:cancelled")
                ready, due, later, running, completed, dead, cancelled = await pipe.execute()
        return JobCounts(
            scheduled=later,
            available=ready + due,
            running=running,
            completed=completed,
            dead=dead,
            cancelled=cancelled,
        )
