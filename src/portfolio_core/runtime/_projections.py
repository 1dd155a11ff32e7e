"""A manifest's projections (the ``projections:`` section) run over its registry:
`Projections`.

Each projection gets one
[ProjectionRunner][portfolio_core.services.projections.ProjectionRunner] over the registry's
EventStore and ProjectionStore entries; its lag is read from durable state (the checkpoint
in the ProjectionStore against the log's head), so ``portfolio-core health`` and the
operator console show the same figure whichever process runs the projection, or while none
does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, cast

from portfolio_core._references import resolve_reference
from portfolio_core.boundary.panels import Panel, register_panel, unregister_panel
from portfolio_core.ports.errors import InvalidInputError, NotFoundError
from portfolio_core.ports.event_store import EventStore
from portfolio_core.ports.projection_store import ProjectionStore
from portfolio_core.registry import Registry
from portfolio_core.runtime._projections_config import ProjectionConfig, ProjectionsConfig
from portfolio_core.services.projections import (
    ProjectionHandler,
    ProjectionRunner,
    ProjectionStatus,
    Selection,
    projection_status,
)

__all__ = ["PANEL", "Projections"]

PANEL = "projections"
"""The name of the console panel `Projections.register_panel` registers."""


def _entry(
    registry: Registry, port: Callable[..., Any], name: str | None, projection: str, key: str
) -> Any:
    try:
        return registry.get(port, name)
    except NotFoundError as exc:
        raise InvalidInputError(
            f"projection {projection!r}: {key}: {exc}", field=f"projections.{projection}.{key}"
        ) from None


def _handler(projection: str, reference: str) -> ProjectionHandler:
    try:
        handler = resolve_reference(reference)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"projection {projection!r}: handler: {exc}",
            field=f"projections.{projection}.handler",
        ) from exc
    if not callable(handler):
        raise InvalidInputError(
            f"projection {projection!r}: handler {reference!r} is a "
            f"{type(handler).__name__}, not a function",
            field=f"projections.{projection}.handler",
        )
    return cast(ProjectionHandler, handler)


class Projections:
    """The projections of a ``projections:`` section, each over its registry entries.

    Building resolves everything at once (the entries, the handlers): a missing entry or
    a handler that cannot be imported raises
    [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] naming the projection
    and its key, and nothing is started. `start` runs every runner in the background
    (catch-up, then live); `stop` stops them and releases their leases. `status` reads
    each projection's checkpoint, the log's head and the lag between them from the stores
    (it needs no runner in this process); `register_panel` shows them on the operator
    console.
    """

    def __init__(self, registry: Registry, config: ProjectionsConfig | None) -> None:
        self.registry = registry
        self.config: Mapping[str, ProjectionConfig] = {} if config is None else config.root
        self._stores: dict[str, tuple[EventStore, ProjectionStore]] = {}
        self.runners: dict[str, ProjectionRunner] = {}
        for name, spec in self.config.items():
            events = _entry(registry, EventStore, spec.events, name, "events")
            store = _entry(registry, ProjectionStore, spec.store, name, "store")
            self._stores[name] = (events, store)
            self.runners[name] = ProjectionRunner(
                events,
                store,
                name,
                _handler(name, spec.handler),
                selection=Selection(frozenset(spec.types), spec.stream_prefix),
                batch_size=spec.batch_size,
                lease_ttl=spec.lease_ttl,
                idle_interval=spec.idle_interval,
                on_error=spec.on_error,
                retries=spec.retries,
                retry_backoff=spec.retry_backoff,
                max_healthy_lag=spec.max_healthy_lag,
            )

    def __len__(self) -> int:
        return len(self.runners)

    async def start(self) -> None:
        """Start every runner in the background; idempotent."""
        for runner in self.runners.values():
            await runner.start()

    async def stop(self) -> None:
        """Stop every runner and release its lease (a standby elsewhere takes over)."""
        for runner in self.runners.values():
            await runner.stop()

    async def status(self) -> dict[str, ProjectionStatus | BaseException]:
        """Each projection's checkpoint, head and lag from the stores, by name; a projection
        whose stores cannot be read gets the exception instead (the others are still
        measured)."""
        names = list(self._stores)
        found = await asyncio.gather(
            *(
                projection_status(
                    *self._stores[name], name, max_healthy_lag=self.config[name].max_healthy_lag
                )
                for name in names
            ),
            return_exceptions=True,
        )
        return dict(zip(names, found, strict=True))

    async def panel(self, _registry: object = None) -> Panel:
        """The console panel: one row per projection (checkpoint, head, lag, the runner's
        state in this process or ``-``); ``warning`` when one lags beyond its
        ``max_healthy_lag``, ``error`` when one cannot be read or its runner failed."""
        rows: list[tuple[str, Any, Any, Any, str, str]] = []
        level = 0
        for name, found in (await self.status()).items():
            runner = self.runners[name]
            state = str(runner.state) if runner.running or runner.error is not None else "-"
            if isinstance(found, BaseException):
                level = 2
                rows.append((name, None, None, None, state, f"{type(found).__name__}: {found}"))
                continue
            note = ""
            if runner.error is not None:
                level = 2
                note = f"{type(runner.error).__name__}: {runner.error}"
            elif not found.healthy:
                level = max(level, 1)
                note = f"lag beyond {found.max_healthy_lag}"
            rows.append((name, found.checkpoint, found.head, found.lag, state, note))
        return Panel(
            title="Projections",
            columns=("projection", "checkpoint", "head", "lag", "runner", "note"),
            rows=rows,
            status=("ok", "warning", "error")[level],
            note="lag: positions between a projection's checkpoint and the log's head",
        )

    def register_panel(self) -> None:
        """Show the projections on the operator console (panel ``projections``), if any."""
        if self.runners:
            register_panel(PANEL, self.panel)

    def unregister_panel(self) -> None:
        unregister_panel(PANEL)
