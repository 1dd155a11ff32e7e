"""The outbox: writes that fail while a store is down are recorded durably and replayed later.

`OutboxProxy` wraps an adapter (raw, or the boundary's protected proxy) and intercepts
the configured async methods. A call that succeeds passes straight through. A call that
fails with a retryable port error
([UnavailableError][portfolio_core.boundary.outbox.UnavailableError], including an open breaker, or
[PortTimeoutError][portfolio_core.boundary.outbox.PortTimeoutError]) is recorded in a JobQueue (a
SQLite file by default) and the
caller is told it was accepted: `OutboxAcceptedError` or a `Pending` value. A
relay task replays recorded calls in record order when the adapter answers again.

Guarantees (see docs/boundary/outbox.md for the degradation contract):
  * Every accepted call is replayed until it succeeds or fails with a non-retryable error
    (then it is dead-lettered with that error; ``outbox.dead`` counts it). Recorded calls
    survive a restart of the process (the store is durable) and are replayed by the next one.
  * Per key (the ``key`` argument, default the first), calls reach the adapter in the order
    they were made: once a key has a recorded call, later calls with that key are recorded
    behind it instead of overtaking it. One relay per store: do not share an outbox store
    between processes.
  * Replays are at-least-once; they are exactly-once for idempotent writes -- an EventStore
    append carries its event ids, so replaying an append that did reach the store returns
    the original result instead of writing the events twice. ``Cache.put`` is idempotent;
    ``Stream.write_stream`` is not (a replay after an unknown outcome may duplicate items).
  * At ``backlog_limit`` pending calls nothing more is recorded: the call raises
    `OutboxFullError` (retryable, the original error as ``__cause__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import importlib
import inspect
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from portfolio_core._observables import observe
from portfolio_core.boundary.config import OutboxConfig
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.errors import (
    InvalidInputError,
    PortError,
    PortTimeoutError,
    UnavailableError,
)
from portfolio_core.ports.job_queue import JobQueue, JobState, NewJob, Reservation

__all__ = [
    "Outbox",
    "OutboxAcceptedError",
    "OutboxFullError",
    "OutboxProxy",
    "OutboxStatus",
    "Pending",
    "decode_call",
    "encode_call",
    "outbox_of",
    "with_outbox",
]

_log = structlog.get_logger("portfolio_core.boundary.outbox")
INSTRUMENTATION = "portfolio_core.boundary"
#: seconds a replay may hold its record before another relay may take it (after a crash)
_LEASE = 30.0
#: seconds aclose() waits for the relay to finish the call it is replaying
_STOP_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class Pending:
    """A call the outbox accepted: it will be replayed. ``id`` is its record's job id."""

    id: str
    method: str
    key: str
    error: str


class OutboxAcceptedError(PortError):
    """The call failed but was recorded in the outbox and will be replayed: do not retry it.

    Attributes:
        pending: what was recorded.
    """

    def __init__(self, pending: Pending, *, port: str | None = None) -> None:
        super().__init__(
            f"{pending.method} accepted by the outbox as {pending.id} (pending: {pending.error})",
            port=port,
        )
        self.pending = pending


class OutboxFullError(UnavailableError):
    """The call failed and the outbox holds ``backlog_limit`` calls already: not recorded."""


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What the outbox holds: calls waiting (``pending``), dead-lettered calls (``dead``),
    the age of the oldest waiting call in seconds, and the limit."""

    pending: int
    dead: int
    oldest_age: float | None
    limit: int

    @property
    def full(self) -> bool:
        return self.pending >= self.limit


# -- the argument codec ------------------------------------------------------------------------

_PRIMITIVES = (str, int, bool, type(None))


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    if not module.startswith("portfolio_core."):
        raise InvalidInputError(f"the outbox only rebuilds portfolio_core types, not {path!r}")
    value: Any = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value


def _encode(value: Any) -> Any:
    if type(value) in _PRIMITIVES:
        return value
    if type(value) is float:
        return {"f": repr(value)}
    if isinstance(value, enum.Enum):
        return {"e": _class_path(type(value)), "v": _encode(value.value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if not cls.__module__.startswith("portfolio_core."):
            raise InvalidInputError(f"the outbox cannot record a {cls.__qualname__}")
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"d": _class_path(cls), "v": fields}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, Mapping):
        if not all(type(k) is str for k in value):
            raise InvalidInputError("the outbox records mappings with string keys only")
        return {"m": {k: _encode(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"l" if isinstance(value, list) else "u": [_encode(v) for v in value]}
    raise InvalidInputError(f"the outbox cannot record a {type(value).__name__}")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "f" in value:
        return float(value["f"])
    if "e" in value:
        return _resolve(value["e"])(_decode(value["v"]))
    if "d" in value:
        cls = _resolve(value["d"])
        return cls(**{k: _decode(v) for k, v in value["v"].items()})
    if "t" in value:
        return datetime.fromisoformat(value["t"])
    if "m" in value:
        return {k: _decode(v) for k, v in value["m"].items()}
    if "l" in value:
        return [_decode(v) for v in value["l"]]
    if "u" in value:
        return tuple(_decode(v) for v in value["u"])
    raise InvalidInputError(f"not an outbox record: {value!r}")


def encode_call(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-compatible record of a call's arguments (values, ``portfolio_core`` value
    objects and enums, tuples, datetimes); InvalidInputError for anything else."""
    return {
        "args": [_encode(a) for a in args],
        "kwargs": {k: _encode(v) for k, v in kwargs.items()},
    }


def decode_call(record: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The ``(args, kwargs)`` that `encode_call` recorded."""
    return (
        tuple(_decode(a) for a in record["args"]),
        {k: _decode(v) for k, v in record["kwargs"].items()},
    )


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UnavailableError | PortTimeoutError)


# -- the outbox ----------------------------------------------------------------------------------


def _open_store(config: OutboxConfig) -> JobQueue:
    """The configured JobQueue adapter, found by entry point (the boundary imports none)."""
    from importlib.metadata import entry_points

    name = config.store.adapter if config.store is not None else "sqlite"
    options: dict[str, Any] = (
        dict(config.store.config) if config.store is not None else {"path": config.path}
    )
    found = [
        ep for ep in entry_points(group="portfolio_core.adapters.job_queue") if ep.name == name
    ]
    if not found:
        raise InvalidInputError(f"no job_queue adapter named {name!r} for the outbox store")
    cls = found[0].load()
    model = getattr(cls, "config_model", None)
    if model is not None and hasattr(cls, "from_config"):
        return cls.from_config(model.model_validate(options))  # type: ignore[no-any-return]
    return cls(**options)  # type: ignore[no-any-return]


class Outbox:
    """The record, the backlog and the relay of one wrapped adapter (see the module doc)."""

    def __init__(
        self,
        config: OutboxConfig,
        *,
        name: str,
        port: PortInfo,
        store: JobQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = name
        self.port = port
        self.queue = config.queue or f"outbox.{name}"[:128]
        self._store = store
        self._owns_store = store is None
        self._clock = clock
        self._target: Any = None
        self._keys: Counter[str] = Counter()
        self._backlog = 0
        self._oldest: dict[str, float] = {}
        self._dead = 0
        self._ready = False
        self._start_lock = asyncio.Lock()
        self._replaying = asyncio.Lock()
        self._wake: asyncio.Event | None = None
        self._relay: asyncio.Task[None] | None = None
        self._closed = False
        self._key_params: dict[str, str] = {}
        self._first: dict[str, bool] = {}
        for method in config.methods:
            params = [
                p.name
                for p in inspect.signature(getattr(port.protocol, method)).parameters.values()
                if p.name != "self"
            ]
            wanted = config.key or (params[0] if params else "")
            if wanted not in params:
                raise InvalidInputError(
                    f"outbox key {wanted!r} is not an argument of {port.name}.{method}",
                    field="key",
                )
            self._key_params[method] = wanted
            self._first[method] = wanted == params[0]
        self._signatures = {m: inspect.signature(getattr(port.protocol, m)) for m in config.methods}
        from opentelemetry import metrics

        meter = metrics.get_meter(INSTRUMENTATION)
        self._recorded = meter.create_counter(
            "portfolio.outbox.recorded", unit="{call}", description="calls the outbox accepted"
        )
        self._replayed = meter.create_counter(
            "portfolio.outbox.replayed", unit="{call}", description="recorded calls replayed"
        )
        self._dead_counter = meter.create_counter(
            "portfolio.outbox.dead", unit="{call}", description="recorded calls dead-lettered"
        )
        self._refused = meter.create_counter(
            "portfolio.outbox.refused", unit="{call}", description="failures not recorded (full)"
        )
        self._attrs = {"portfolio.adapter": name, "portfolio.port": port.key}
        observe(
            metrics.get_meter_provider(),
            INSTRUMENTATION,
            "gauge",
            "portfolio.outbox.backlog",
            self._observe,
            unit="{call}",
            description="recorded calls waiting to be replayed",
        )

    def _observe(self, _options: Any) -> Any:
        from opentelemetry.metrics import Observation

        yield Observation(self._backlog, self._attrs)

    def bind(self, target: object) -> None:
        """Set the adapter (or protected proxy) the relay replays calls on."""
        self._target = target

    @property
    def store(self) -> JobQueue | None:
        return self._store

    def key_of(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        name = self._key_params[method]
        if name in kwargs:
            return str(kwargs[name])
        if args and self._first[method]:  # the usual case, without binding the signature
            return str(args[0])
        bound = self._signatures[method].bind(None, *args, **kwargs)
        return str(bound.arguments.get(name, ""))

    async def start(self) -> None:
        """Open the store, count what it holds, and start the relay if anything is pending."""
        if self._ready:
            return
        async with self._start_lock:
            if self._started_meanwhile():
                return
            if self._store is None:
                self._store = _open_store(self.config)
            starter = getattr(self._store, "start", None)
            if callable(starter):
                await starter()
            now = self._clock()
            for state in (JobState.AVAILABLE, JobState.SCHEDULED, JobState.RUNNING):
                for job in await self._store.list_jobs(self.queue, state, limit=1_000_000):
                    self._track(job.payload["key"], job.id, job.enqueued_at)
            self._dead = (await self._store.counts(self.queue)).dead
            self._ready = True
            self._closed = False
            if self._backlog:
                self._ensure_relay()
            _log.debug("outbox started", adapter=self.name, pending=self._backlog, now=now)

    def _started_meanwhile(self) -> bool:
        return self._ready  # another task may have finished start() while this one waited

    def _track(self, key: str, job_id: str, at: float) -> None:
        self._keys[key] += 1
        self._backlog += 1
        self._oldest[job_id] = at

    def _untrack(self, key: str, job_id: str) -> None:
        self._keys[key] -= 1
        if self._keys[key] <= 0:
            del self._keys[key]
        self._backlog -= 1
        self._oldest.pop(job_id, None)

    def has_pending(self, key: str) -> bool:
        return key in self._keys

    async def record(
        self, method: str, key: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], error: str
    ) -> Pending:
        """Store the call durably; raises OutboxFullError at the limit."""
        await self.start()
        assert self._store is not None  # noqa: S101  (type narrowing)
        if self._backlog >= self.config.backlog_limit:
            self._refused.add(1, self._attrs)
            raise OutboxFullError(
                f"{self.name}.{method} failed and the outbox is full "
                f"({self._backlog} calls pending, limit {self.config.backlog_limit})",
                port=self.port.name,
            )
        payload = {"key": key, "call": encode_call(args, kwargs), "error": error}
        job_id = await self._store.enqueue(
            NewJob(method, payload, queue=self.queue, max_attempts=1)
        )
        self._track(key, job_id, self._clock())
        self._recorded.add(1, {**self._attrs, "portfolio.method": method})
        _log.warning(
            "call recorded in the outbox", adapter=self.name, method=method, key=key, error=error
        )
        self._ensure_relay()
        return Pending(job_id, method, key, error)

    def _ensure_relay(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._relay is None or self._relay.done():
            self._relay = asyncio.get_running_loop().create_task(self._relay_loop())

    async def replay_once(self) -> bool:
        """Replay recorded calls in order until one fails retryably (returns False) or none is
        left (returns True)."""
        await self.start()
        store = self._store
        assert store is not None  # noqa: S101  (type narrowing)
        async with self._replaying:  # one pass at a time keeps the record order
            while not self._closed:
                got = await store.reserve(self.queue, limit=1, lease=_LEASE)
                if not got:
                    return True
                if not await self._replay(store, got[0]):
                    return False
        return False

    async def _replay(self, store: JobQueue, held: Reservation) -> bool:
        job = held.job
        key = job.payload["key"]
        args, kwargs = decode_call(job.payload["call"])
        try:
            await getattr(self._target, job.task)(*args, **kwargs)
        except asyncio.CancelledError:  # stopping: give the call back for the next relay
            with contextlib.suppress(PortError):
                await asyncio.shield(store.release(held))
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if _retryable(exc):
                await store.release(held)
                _log.info("outbox replay deferred", adapter=self.name, key=key, error=error)
                return False
            await store.fail(held, error)  # max_attempts=1: dead-lettered with the error
            self._untrack(key, job.id)
            self._dead += 1
            self._dead_counter.add(1, {**self._attrs, "portfolio.method": job.task})
            _log.error("outbox call dead-lettered", adapter=self.name, key=key, error=error)
            return True
        await store.complete(held)
        self._untrack(key, job.id)
        self._replayed.add(1, {**self._attrs, "portfolio.method": job.task})
        return True

    async def _relay_loop(self) -> None:
        interval = self.config.relay_interval
        assert self._wake is not None  # noqa: S101  (type narrowing)
        while not self._closed:
            self._wake.clear()
            try:
                drained = await self.replay_once()
            except PortError as exc:  # the store itself failed: try again later
                _log.warning("outbox relay error", adapter=self.name, error=str(exc))
                drained = False
            if drained:
                interval = self.config.relay_interval
                if not self._backlog:
                    await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            interval = min(interval * 2, self.config.max_relay_interval)

    def status(self) -> OutboxStatus:
        """Pending and dead counts and the oldest pending call's age (no I/O)."""
        now = self._clock()
        oldest = min(self._oldest.values(), default=None)
        return OutboxStatus(
            self._backlog,
            self._dead,
            None if oldest is None else max(0.0, now - oldest),
            self.config.backlog_limit,
        )

    async def aclose(self) -> None:
        """Stop the relay and close the store if the outbox opened it. Idempotent."""
        self._closed = True
        relay, self._relay = self._relay, None
        if relay is not None:
            if self._wake is not None:
                self._wake.set()
            # let the relay finish its step (a reservation is never dropped half-way), but
            # do not wait for ever on a call that hangs
            _done, pending = await asyncio.wait({relay}, timeout=_STOP_WAIT)
            if pending:
                relay.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay
        store = self._store
        if store is not None and self._owns_store:
            self._store = None
            closer = getattr(store, "aclose", None)
            if callable(closer):
                await closer()
        self._ready = False


class OutboxProxy:
    """Stands in for an adapter: the outbox's methods go through `Outbox`, everything
    else is forwarded unchanged (including ``boundary``, ``capabilities`` and ``ping``)."""

    __slots__ = ("_pc_inner", "outbox")

    def __init__(self, inner: object, outbox: Outbox) -> None:
        self._pc_inner = inner
        self.outbox = outbox
        outbox.bind(inner)

    def __getattr__(self, name: str) -> Any:
        if name in self.outbox.config.methods:
            return self._intercept(name)
        return getattr(self._pc_inner, name)

    def __repr__(self) -> str:
        return f"OutboxProxy({self._pc_inner!r})"

    @property
    def inner(self) -> Any:
        """What this proxy wraps (the adapter, or the boundary's protected proxy)."""
        return self._pc_inner

    def _intercept(self, method: str) -> Callable[..., Any]:
        inner = self._pc_inner
        outbox = self.outbox

        async def call(*args: Any, **kwargs: Any) -> Any:
            key = outbox.key_of(method, args, kwargs)
            if outbox.has_pending(key):
                error = "an earlier call with this key is pending"
            else:
                try:
                    return await getattr(inner, method)(*args, **kwargs)
                except (UnavailableError, PortTimeoutError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    cause: BaseException = exc
                    try:
                        pending = await outbox.record(method, key, args, kwargs, error)
                    except OutboxFullError as full:
                        raise full from cause
                    return _accepted(outbox, pending)
            pending = await outbox.record(method, key, args, kwargs, error)
            return _accepted(outbox, pending)

        call.__name__ = method
        return call

    async def start(self) -> None:
        starter = getattr(self._pc_inner, "start", None)
        if callable(starter):
            result = starter()
            if inspect.isawaitable(result):
                await result
        await self.outbox.start()

    async def aclose(self) -> None:
        await self.outbox.aclose()
        closer = getattr(self._pc_inner, "aclose", None)
        if callable(closer):
            await closer()


def _accepted(outbox: Outbox, pending: Pending) -> Any:
    if outbox.config.on_pending == "return":
        return pending
    raise OutboxAcceptedError(pending, port=outbox.port.name)


def outbox_of(obj: object) -> Outbox | None:
    """The `Outbox` of an adapter wrapped with one, else ``None``."""
    found = getattr(type(obj), "__slots__", None) and getattr(obj, "outbox", None)
    return found if isinstance(found, Outbox) else None


def with_outbox(adapter: object, healthy: bool, detail: str) -> tuple[bool, str]:
    """``(healthy, detail)`` with the outbox's backlog taken into account: a full outbox makes
    the entry unhealthy; a non-empty one adds ``outbox: N pending`` to the detail."""
    outbox = outbox_of(adapter)
    if outbox is None:
        return healthy, detail
    status = outbox.status()
    if status.pending == 0 and status.dead == 0:
        return healthy, detail
    note = f"outbox: {status.pending} pending"
    if status.oldest_age is not None:
        note += f", oldest {status.oldest_age:.1f} s"
    if status.dead:
        note += f", {status.dead} dead"
    if status.full:
        return False, f"{note} (full: new failures are not recorded); {detail}"
    return healthy, f"{detail}; {note}"
