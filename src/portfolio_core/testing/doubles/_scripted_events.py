"""Scripted doubles of the event and state ports: Stream, EventStore, ConfigStore,
SnapshotStore, ProjectionStore, JobQueue (see the package docstring).

Only what differs from "answer from the script" is written here; every other port method is
generated from the port's protocol by `_Scripted`.
"""

from __future__ import annotations

import itertools
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from typing import Any, ClassVar, cast

from portfolio_core.ports.config_store import ChangeSet, ConfigSnapshot, ConfigStore
from portfolio_core.ports.event_store import (
    AppendResult,
    EventStore,
    EventStoreCapability,
    StreamState,
)
from portfolio_core.ports.job_queue import JobCounts, JobQueue
from portfolio_core.ports.projection_store import ProjectionStore
from portfolio_core.ports.snapshot_store import SnapshotStore
from portfolio_core.ports.stream import Stream, StreamCapability, StreamMessage, StreamOptions
from portfolio_core.testing.doubles._core import _Scripted, computed

__all__ = [
    "ScriptedConfigStore",
    "ScriptedEventStore",
    "ScriptedJobQueue",
    "ScriptedProjectionStore",
    "ScriptedSnapshotStore",
    "ScriptedStream",
]


# -- Stream ------------------------------------------------------------------------------------


class ScriptedStream(_Scripted, port=Stream):
    """A stream yielding scripted messages per ``stream`` call (a list each) and counting
    what ``write_stream`` receives (kept in ``.written[sink]``)."""

    _capabilities = frozenset({StreamCapability.ACKNOWLEDGE.value})
    _defaults: ClassVar[Mapping[str, Any]] = {"stream": list, "ack": None}

    def __init__(self, **answers: Any) -> None:
        super().__init__(**answers)
        self.written: dict[str, list[Any]] = {}

    async def stream(
        self, source: str, opts: StreamOptions | None = None
    ) -> AsyncIterator[StreamMessage]:
        for item in cast(Iterable[Any], self._answer("stream", source, opts)):
            yield (
                item
                if isinstance(item, StreamMessage)
                else StreamMessage(str(id(item)), item, source)
            )

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        self._log("write_stream", (sink, items, opts), {})
        got = self.written.setdefault(sink, [])
        before = len(got)
        if isinstance(items, AsyncIterable):
            got.extend([item async for item in items])
        else:
            got.extend(items)
        return len(got) - before

    async def transform(
        self,
        source: AsyncIterable[Any],
        fn: Callable[[Any], Awaitable[Any]] | Callable[[Any], Any],
        opts: StreamOptions | None = None,
    ) -> AsyncIterator[Any]:
        self._log("transform", (source, fn, opts), {})
        async for item in source:
            out = fn(item)
            yield (await out) if isinstance(out, Awaitable) else out


# -- EventStore --------------------------------------------------------------------------------


class ScriptedEventStore(_Scripted, port=EventStore):
    """An event store with canned answers; unscripted ``append`` numbers the batch from 1,
    reads return nothing."""

    _capabilities = frozenset({EventStoreCapability.QUERY.value})
    _defaults: ClassVar[Mapping[str, Any]] = {
        "append": computed(
            lambda stream, events, expected_version=StreamState.ANY: AppendResult(
                stream, len(events), tuple(range(1, len(events) + 1))
            )
        ),
        "read": list,
        "read_all": list,
        "query": list,
        "unsubscribe": None,
    }


# -- ConfigStore -------------------------------------------------------------------------------


class ScriptedConfigStore(_Scripted, port=ConfigStore):
    """A config store with canned answers; unscripted it is empty at version 0, ``apply``
    returns version 1, ``watch`` yields the scripted change sets of each call (a list each)
    and ``get`` and ``rollback`` must be scripted."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "current_version": 0,
        "read": computed(lambda prefix="", version=None: ConfigSnapshot(version or 0, {})),
        "apply": 1,
        "history": list,
        "watch": list,
    }

    async def watch(
        self, prefix: str = "", *, from_version: int | None = None
    ) -> AsyncIterator[ChangeSet]:
        for item in cast(
            Iterable[ChangeSet], self._answer("watch", prefix, from_version=from_version)
        ):
            yield item


# -- SnapshotStore and ProjectionStore ---------------------------------------------------------


class ScriptedSnapshotStore(_Scripted, port=SnapshotStore):
    """A snapshot store with canned answers; unscripted it holds nothing (``load`` returns
    None), ``save`` answers True and ``delete`` succeeds."""

    _defaults: ClassVar[Mapping[str, Any]] = {"save": True, "load": None, "delete": None}


class ScriptedProjectionStore(_Scripted, port=ProjectionStore):
    """A projection store with canned answers; unscripted every projection is at
    checkpoint 0, ``claim`` answers None (held elsewhere), and ``commit``, ``release`` and
    ``reset`` succeed without running the effect."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "claim": None,
        "release": None,
        "checkpoint": 0,
        "commit": None,
        "reset": None,
    }


# -- JobQueue ----------------------------------------------------------------------------------

_job_ids = itertools.count(1)


class ScriptedJobQueue(_Scripted, port=JobQueue):
    """A job queue with canned answers; unscripted ``enqueue`` returns fresh ids ("1", "2",
    ...), ``reserve`` and ``list_jobs`` return nothing, ``counts`` zeros, and finishing a
    reservation succeeds; ``get``, ``fail``, ``retry`` and ``cancel`` must be scripted."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "enqueue": computed(lambda job: str(next(_job_ids))),
        "enqueue_many": computed(lambda jobs: [str(next(_job_ids)) for _ in jobs]),
        "reserve": list,
        "complete": None,
        "extend": computed(lambda reservation, lease: reservation),
        "release": None,
        "list_jobs": list,
        "counts": JobCounts,
    }
