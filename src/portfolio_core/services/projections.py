"""Projections: read models kept up to date from the event log, with a durable checkpoint.

A `ProjectionRunner` reads the log from its projection's checkpoint in position order
(catch-up), then keeps polling for new events (live). Each batch's selected events go to
the handler inside `ProjectionStore.commit <portfolio_core.ports.ProjectionStore.commit>`,
which moves the checkpoint to the batch's last position only after the handler's effect:

* on a ``TRANSACTIONAL`` store (SQLite, PostgreSQL) the handler gets the store's transaction
  and writes its read model there, so effect and checkpoint commit together: every event's
  effect is applied exactly once, across crashes and runner changes;
* on other stores it gets ``None``: effects are applied at least once (a crash between the
  effect and the checkpoint repeats the batch), and each event carries its ``position`` for
  the handler to be idempotent.

Contract
--------
* The handler receives the selected events (all, by stream prefix, by type) of each batch, in
  position order, none skipped and, on a transactional store, none repeated; the checkpoint
  moves only past events whose effect committed ("checkpoint after effect"). Events not
  selected are passed over (the checkpoint moves past them too).
* One runner per projection is active at a time: each runner claims the projection's lease
  in the store (renewed every batch, ``lease_ttl`` seconds); the others stand by and take over
  when the lease expires or is released. A runner that lost its lease mid-batch commits
  nothing (the store refuses it with LeaseLostError) and goes back to standing by.
* A handler that raises: the checkpoint does not move; with ``on_error="stop"`` the runner
  stops (state ``failed``, the exception in ``error``, the lease released for a standby); with
  ``"retry"`` the batch is retried ``retries`` times with exponential backoff, then it stops.
* ``pause()`` stops processing after the current batch while keeping the lease (standbys do
  not take over); ``resume()`` goes on from the checkpoint.
* ``lag`` is the number of positions between the checkpoint and the log's head, measured
  after every batch; it is reported by `health`, by `ping` (UnavailableError when
  failed or beyond ``max_healthy_lag``) and as the OpenTelemetry gauge
  ``portfolio.projection.lag`` (attribute ``portfolio.projection``) of the global meter
  provider, or of ``meter_provider`` when given.
* `rebuild` replays the whole log into a fresh read model under a new projection name
  while the old one keeps serving, then calls a swap (blue/green).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from portfolio_core._observables import observe
from portfolio_core._tasks import cancel_and_wait
from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import LeaseLostError, PortTimeoutError, UnavailableError
from portfolio_core.ports.event_store import EventStore, RecordedEvent
from portfolio_core.ports.projection_store import (
    Lease,
    ProjectionStore,
    ProjectionStoreCapability,
)

__all__ = [
    "OnProjectionError",
    "ProjectionHandler",
    "ProjectionRunner",
    "ProjectionStatus",
    "RunnerState",
    "Selection",
    "log_head",
    "projection_status",
    "rebuild",
]

ProjectionHandler = Callable[[Sequence[RecordedEvent], Any], Awaitable[None]]
"""``handler(events, tx)``: apply the batch's effect (``tx``: the store's transaction or None)."""


class OnProjectionError(StrEnum):
    STOP = "stop"
    RETRY = "retry"


class RunnerState(StrEnum):
    STOPPED = "stopped"
    STANDBY = "standby"
    """Another runner holds the projection's lease."""
    ACTIVE = "active"
    PAUSED = "paused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Selection:
    """Which events a projection handles: every event, or those of the given ``types``
    and/or of streams starting with ``stream_prefix``."""

    types: frozenset[str] = frozenset()
    stream_prefix: str = ""

    def __call__(self, event: RecordedEvent) -> bool:
        if self.types and event.type not in self.types:
            return False
        return event.stream.startswith(self.stream_prefix)


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """A projection's progress read from durable state: its checkpoint in its
    [ProjectionStore][portfolio_core.ports.projection_store.ProjectionStore], the log's
    last position and the positions between them (``lag``); ``healthy`` is False when
    ``lag`` exceeds ``max_healthy_lag`` (never, when that is None)."""

    projection: str
    checkpoint: int
    head: int
    max_healthy_lag: int | None = None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.checkpoint)

    @property
    def healthy(self) -> bool:
        return self.max_healthy_lag is None or self.lag <= self.max_healthy_lag


async def log_head(events: EventStore, known: int = 0, step: int = 500) -> int:
    """The log's last position, found with a galloping then a binary search of one-event
    ``read_all`` calls (about ``2 * log2(lag / step)`` reads); ``known`` is a position
    known to exist (or 0) and the search starts there, ``step`` is its first stride.
    Relies on positions increasing; gaps are allowed."""
    step = max(step, 1)
    low = known
    while True:
        probe = await events.read_all(low + step, 1)
        if not probe:
            break
        low = probe[0].position
        step *= 2
    high = low + step  # no event at or after high
    while high - low > 1:
        middle = (low + high) // 2
        probe = await events.read_all(middle, 1)
        if probe and probe[0].position < high:
            low = probe[0].position
        else:
            high = middle
    return low


async def projection_status(
    events: EventStore,
    store: ProjectionStore,
    name: str,
    *,
    max_healthy_lag: int | None = None,
) -> ProjectionStatus:
    """``name``'s checkpoint, the log's head and the lag between them, read from the stores
    (so it is the same whichever process runs the projection, or none). Raises what the
    stores raise (UnavailableError when one cannot be reached)."""
    checkpoint = await store.checkpoint(name)
    head = await log_head(events, checkpoint if checkpoint else 0)
    return ProjectionStatus(name, checkpoint, head, max_healthy_lag)


class ProjectionRunner:
    """Feeds one projection from the log; see the module docstring for the contract."""

    def __init__(
        self,
        events: EventStore,
        store: ProjectionStore,
        name: str,
        handler: ProjectionHandler,
        *,
        selection: Selection | None = None,
        batch_size: int = 500,
        owner: str | None = None,
        lease_ttl: float = 10.0,
        idle_interval: float = 0.2,
        on_error: OnProjectionError | str = OnProjectionError.STOP,
        retries: int = 3,
        retry_backoff: float = 0.05,
        max_healthy_lag: int | None = None,
        meter_provider: Any = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 0 < idle_interval < lease_ttl / 2:
            raise ValueError("idle_interval must be positive and under half of lease_ttl")
        self.events = events
        self.store = store
        self.name = name
        self.handler = handler
        self.selection = selection or Selection()
        self.batch_size = batch_size
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.lease_ttl = lease_ttl
        self.idle_interval = idle_interval
        self.on_error = OnProjectionError(on_error)
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.max_healthy_lag = max_healthy_lag
        self.transactional = supports(store, ProjectionStoreCapability.TRANSACTIONAL)
        self.state = RunnerState.STOPPED
        self.error: BaseException | None = None
        self.checkpoint = 0
        self.head = 0
        self.processed = 0
        """Events handed to the handler in committed batches by this runner."""
        self._lease: Lease | None = None
        self._paused = False
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()
        self._meter_provider = meter_provider
        self._gauge_registered = False

    def __repr__(self) -> str:
        return f"ProjectionRunner({self.name!r}, owner={self.owner!r}, state={self.state})"

    @property
    def running(self) -> bool:
        """Whether the runner works in the background (`start`ed, not stopped nor failed)."""
        return self._task is not None and not self._task.done()

    @property
    def lag(self) -> int:
        """Positions between the checkpoint and the log's head at the last measurement."""
        return max(0, self.head - self.checkpoint)

    # -- one step ------------------------------------------------------------------------------

    async def _lease_now(self) -> Lease | None:
        lease = await self.store.claim(self.name, self.owner, self.lease_ttl)
        self._lease = lease
        return lease

    async def step(self) -> int:
        """Claim (or renew) the lease and, if held and not paused, process one batch.

        Returns the number of log events the checkpoint moved past (0 when standing by,
        paused or caught up). Raises what the handler raised (the checkpoint did not move).
        """
        lease = await self._lease_now()
        if lease is None:
            self.state = RunnerState.STANDBY
            return 0
        if self._paused:
            self.state = RunnerState.PAUSED
            return 0
        self.state = RunnerState.ACTIVE
        self.checkpoint = await self.store.checkpoint(self.name)
        batch = await self.events.read_all(self.checkpoint + 1, self.batch_size)
        if not batch:
            self.head = await self._head(self.checkpoint)
            await self._notify()
            return 0
        selected = [e for e in batch if self.selection(e)]
        last = batch[-1].position

        async def effect(tx: Any) -> None:
            if selected:
                await self.handler(selected, tx)

        try:
            await self.store.commit(lease, last, effect)
        except LeaseLostError:
            self._lease = None
            self.state = RunnerState.STANDBY
            return 0
        self.processed += len(selected)
        self.checkpoint = last
        self.head = last if len(batch) < self.batch_size else max(self.head, await self._head(last))
        await self._notify()
        return len(batch)

    async def _head(self, known: int) -> int:
        return await log_head(self.events, known, self.batch_size)

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run in the background (catch-up, then live) until `stop`; idempotent."""
        if self._task is not None and not self._task.done():
            return
        self.error = None
        self._register_gauge()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                moved = await self.step()
                failures = 0
            except (UnavailableError, PortTimeoutError):
                moved = 0  # the store or the log is down: try again after a pause
                self.state = RunnerState.STANDBY
            except Exception as exc:
                failures += 1
                if self.on_error is OnProjectionError.RETRY and failures <= self.retries:
                    await asyncio.sleep(self.retry_backoff * 2 ** (failures - 1))
                    continue
                self.error = exc
                self.state = RunnerState.FAILED
                await self._release()
                await self._notify()
                return
            if moved == 0:
                await asyncio.sleep(self.idle_interval)

    async def _release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(Exception):
                await self.store.release(lease)

    async def stop(self) -> None:
        """Stop after the current step and release the lease (a standby takes over)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self._release()
        if self.state is not RunnerState.FAILED:
            self.state = RunnerState.STOPPED

    def pause(self) -> None:
        """Process nothing from the next step on, keeping the lease."""
        self._paused = True

    def resume(self) -> None:
        """Go on from the checkpoint."""
        self._paused = False

    async def wait_until(self, position: int, timeout: float | None = None) -> None:
        """Wait until the checkpoint reaches ``position``; PortTimeoutError after ``timeout``.
        Raises the handler's exception if the runner failed."""

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(
                    lambda: self.checkpoint >= position or self.state is RunnerState.FAILED
                )

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            raise PortTimeoutError(
                f"projection {self.name!r} did not reach position {position} in {timeout}s "
                f"(checkpoint {self.checkpoint}, state {self.state})",
                timeout=timeout or 0.0,
            ) from None
        if self.state is RunnerState.FAILED and self.error is not None:
            raise self.error

    async def run_until_caught_up(self, timeout: float | None = None) -> None:
        """Process batches in the foreground until the checkpoint reaches the head."""

        async def drain() -> None:
            while True:
                moved = await self.step()
                if moved == 0:
                    if self.state is RunnerState.ACTIVE:
                        return
                    await asyncio.sleep(self.idle_interval)

        try:
            await asyncio.wait_for(drain(), timeout)
        except TimeoutError:
            raise PortTimeoutError(
                f"projection {self.name!r} did not catch up in {timeout}s (state {self.state})",
                timeout=timeout or 0.0,
            ) from None

    # -- health and telemetry ------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What an operator needs: state, positions, lag, owner, the error if failed."""
        return {
            "projection": self.name,
            "state": str(self.state),
            "owner": self.owner,
            "checkpoint": self.checkpoint,
            "head": self.head,
            "lag": self.lag,
            "processed": self.processed,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        }

    async def ping(self) -> None:
        """Raise UnavailableError when failed, or lagging beyond ``max_healthy_lag``."""
        if self.state is RunnerState.FAILED:
            raise UnavailableError(
                f"projection {self.name!r} stopped: {self.health()['error']}", port="Projection"
            )
        if self.max_healthy_lag is not None and self.lag > self.max_healthy_lag:
            raise UnavailableError(
                f"projection {self.name!r} is {self.lag} positions behind the log "
                f"(more than {self.max_healthy_lag})",
                port="Projection",
            )

    def _register_gauge(self) -> None:
        if self._gauge_registered:
            return
        from opentelemetry import metrics

        provider = self._meter_provider or metrics.get_meter_provider()
        observe(
            provider,
            "portfolio_core.services",
            "gauge",
            "portfolio.projection.lag",
            self._observe,
            unit="{position}",
            description="positions between a projection's checkpoint and the log's head",
        )
        self._gauge_registered = True

    def _observe(self, _options: Any) -> Any:
        from opentelemetry.metrics import Observation

        yield Observation(self.lag, {"portfolio.projection": self.name})


async def rebuild(
    events: EventStore,
    store: ProjectionStore,
    name: str,
    handler: ProjectionHandler,
    swap: Callable[[], Awaitable[None]],
    *,
    selection: Selection | None = None,
    batch_size: int = 500,
    timeout: float | None = None,
) -> ProjectionRunner:
    """Blue/green rebuild: replay the whole log into a fresh read model, then ``swap``.

    ``name`` is the new projection (a name never used, e.g. ``orders@2``) and ``handler``
    writes the fresh read model (a new table); the old projection keeps running and serving
    reads meanwhile. Once the new one has caught up with the head, ``swap`` makes readers use
    it (e.g. re-points a view in one transaction); the caller then stops the old runner and
    starts the returned one live.
    """
    runner = ProjectionRunner(
        events, store, name, handler, selection=selection, batch_size=batch_size
    )
    if await store.checkpoint(name) != 0:
        raise ValueError(f"projection {name!r} already has a checkpoint: rebuild into a new name")
    await runner.run_until_caught_up(timeout)
    await swap()
    await runner.run_until_caught_up(timeout)  # what was appended during the swap
    return runner
