"""Upcasting: old events (and snapshots) read as the current schema version of their type.

An event type's schema changes over time; events already in the log keep the shape they
were written with. `Upcasters` holds, per event type, one function per version step
(``data`` at version ``v`` -> ``data`` at ``v + 1``); `UpcastingEventStore` wraps any
[EventStore][portfolio_core.ports.EventStore] adapter and applies them on every read, so
application code only ever sees the current shape.

Contract
--------
* An event's schema version is ``metadata["schema_version"]`` (an int >= 1); an event
  without it is version 1. A type's current version is 1 + the number of steps registered
  for it (steps must be registered from 1 up without a hole: ``register`` refuses a hole).
* ``append`` through the wrapper stamps every event of a type that has steps with the
  current version (an event already carrying ``schema_version`` keeps it, which must be an
  int between 1 and the current version, else InvalidInputError and nothing is written).
* ``read``, ``read_all``, ``query`` and subscriptions return every event at its type's
  current version: the steps from its stored version up are applied in order and
  ``metadata["schema_version"]`` is set to the current version. Events of types without
  steps, and events already current, are returned unchanged.
* A step that raises, or returns something that is not a JSON object (a ``dict`` with
  ``str`` keys), raises [UpcastError][portfolio_core.ports.errors.UpcastError] naming the event
  id, its type and the version the step was given; an event stored with a version newer
  than the type's current one (written by newer code) raises it too. Nothing stored
  changes: the old event is still there, the read fails until the step is fixed.
* ``query`` filters match the events as stored (the database filters before anything is
  upcast): filter on fields that every version has, or on ``schema_version`` explicitly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.errors import InvalidInputError, UnsupportedError, UpcastError
from portfolio_core.ports.event_store import (
    AppendResult,
    Direction,
    EventHandler,
    EventQuery,
    EventStore,
    EventStoreCapability,
    ExpectedVersion,
    NewEvent,
    OnHandlerError,
    RecordedEvent,
    StreamState,
    Subscription,
)

__all__ = ["SCHEMA_VERSION", "Upcast", "Upcasters", "UpcastingEventStore"]

SCHEMA_VERSION = "schema_version"
"""The metadata key holding an event's schema version."""

Upcast = Callable[[dict[str, Any]], Mapping[str, Any]]
"""One step: the data of version ``v`` (a fresh dict, free to change) -> the data of ``v+1``."""


class Upcasters:
    """The upcasting steps of every event type (or of one aggregate's snapshots).

    ``register("OrderPlaced", 1, fn)`` (or ``@upcasters.step("OrderPlaced", 1)``) makes
    ``fn`` turn version-1 data into version-2 data; the type's current version becomes 2.
    """

    def __init__(self) -> None:
        self._steps: dict[str, list[Upcast]] = {}

    def register(self, record_type: str, from_version: int, upcast: Upcast) -> None:
        """Add the step from ``from_version`` to ``from_version + 1`` of ``record_type``.

        Raises ValueError for a step already registered or one leaving a hole (the step
        from 2 before the step from 1).
        """
        steps = self._steps.setdefault(record_type, [])
        if isinstance(from_version, bool) or not isinstance(from_version, int):
            raise TypeError(f"from_version must be an int, got {type(from_version).__name__}")
        if from_version != len(steps) + 1:
            if from_version <= len(steps):
                raise ValueError(f"{record_type!r} already has a step from version {from_version}")
            raise ValueError(
                f"{record_type!r}: register the step from version {len(steps) + 1} before "
                f"the one from {from_version}"
            )
        steps.append(upcast)

    def step(self, record_type: str, from_version: int) -> Callable[[Upcast], Upcast]:
        """Decorator form of `register`."""

        def decorate(fn: Upcast) -> Upcast:
            self.register(record_type, from_version, fn)
            return fn

        return decorate

    def current_version(self, record_type: str) -> int:
        """The version a record of ``record_type`` is read as (1 without steps)."""
        return len(self._steps.get(record_type, ())) + 1

    def __contains__(self, record_type: object) -> bool:
        return record_type in self._steps

    def upcast(
        self, record: str, record_type: str, version: int, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``data`` stored at ``version``, brought to the current version.

        ``record`` names what is being read in errors (an event id, ``snapshot:<stream>``).
        Raises UpcastError when a step fails or ``version`` is not one this registry knows.
        """
        steps = self._steps.get(record_type, ())
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise UpcastError(
                f"{record} ({record_type}) has schema version {version!r}, not an int >= 1",
                record=record,
                record_type=record_type,
                schema_version=version if isinstance(version, int) else 0,
            )
        if version > len(steps) + 1:
            raise UpcastError(
                f"{record} ({record_type}) was written at schema version {version}, newer "
                f"than the current version {len(steps) + 1} known here",
                record=record,
                record_type=record_type,
                schema_version=version,
            )
        current = dict(data)
        for v in range(version, len(steps) + 1):
            try:
                result = steps[v - 1](current)
            except Exception as exc:
                raise UpcastError(
                    f"upcasting {record} ({record_type}) from schema version {v} failed: "
                    f"{type(exc).__name__}: {exc}",
                    record=record,
                    record_type=record_type,
                    schema_version=v,
                ) from exc
            if not isinstance(result, Mapping) or any(type(k) is not str for k in result):
                raise UpcastError(
                    f"upcasting {record} ({record_type}) from schema version {v} returned "
                    f"{type(result).__name__}, not a JSON object",
                    record=record,
                    record_type=record_type,
                    schema_version=v,
                )
            current = dict(result)
        return current

    def read(self, event: RecordedEvent) -> RecordedEvent:
        """``event`` at its type's current version (unchanged when already current)."""
        steps = self._steps.get(event.type)
        if not steps:
            return event
        version = event.metadata.get(SCHEMA_VERSION, 1)
        if version == len(steps) + 1 and type(version) is int:
            return event
        data = self.upcast(event.id, event.type, version, event.data)
        metadata = {**event.metadata, SCHEMA_VERSION: len(steps) + 1}
        return dataclasses.replace(event, data=data, metadata=metadata)

    def stamp(self, event: NewEvent) -> NewEvent:
        """``event`` with its schema version in the metadata (when its type has steps)."""
        if event.type not in self._steps:
            return event
        current = self.current_version(event.type)
        given = event.metadata.get(SCHEMA_VERSION)
        if given is None:
            return dataclasses.replace(event, metadata={**event.metadata, SCHEMA_VERSION: current})
        if type(given) is not int or not 1 <= given <= current:
            raise InvalidInputError(
                f"event {event.id} ({event.type}) carries schema version {given!r}; it must "
                f"be an int from 1 to {current}",
                field="metadata",
                port="EventStore",
            )
        return event


class UpcastingEventStore:
    """An EventStore that reads every event at its current schema version.

    Wraps any adapter (``UpcastingEventStore(SQLiteEventStore(...), upcasters)``) and
    declares the same capabilities; see the module docstring for the clauses it adds.
    Starting and closing are passed on to the wrapped store.
    """

    def __init__(self, store: EventStore, upcasters: Upcasters) -> None:
        self.store = store
        self.upcasters = upcasters
        self.capabilities = capabilities_of(store)

    def __repr__(self) -> str:
        return f"UpcastingEventStore({self.store!r})"

    async def start(self) -> None:
        start = getattr(self.store, "start", None)
        if start is not None:
            await start()

    async def aclose(self) -> None:
        close = getattr(self.store, "aclose", None)
        if close is not None:
            await close()

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        stamp = self.upcasters.stamp
        if isinstance(events, (list, tuple)):  # anything else: the store refuses it
            events = [stamp(e) if isinstance(e, NewEvent) else e for e in events]
        return await self.store.append(stream, events, expected_version)

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        read = self.upcasters.read
        return [read(e) for e in await self.store.read(stream, from_version, limit, direction)]

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        read = self.upcasters.read
        return [read(e) for e in await self.store.read_all(from_position, limit)]

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        read = self.upcasters.read
        return [read(e) for e in await self.store.query(query)]

    async def count(self, query: EventQuery) -> int:
        """The wrapped store's count (upcasting changes no event's presence, and queries
        filter the events as stored); UnsupportedError when it does not declare
        ``event_store.count``."""
        count = getattr(self.store, "count", None)
        if EventStoreCapability.COUNT.value not in self.capabilities or count is None:
            raise UnsupportedError(
                f"{type(self.store).__name__} does not count events",
                capability=EventStoreCapability.COUNT.value,
                port="EventStore",
            )
        return int(await count(query))

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        read = self.upcasters.read

        async def upcast_then_handle(event: RecordedEvent) -> None:
            await handler(read(event))

        return await self.store.subscribe(
            upcast_then_handle,
            stream=stream,
            from_position=from_position,
            filter=filter,
            on_error=on_error,
        )

    async def unsubscribe(self, subscription: Subscription) -> None:
        await self.store.unsubscribe(subscription)
