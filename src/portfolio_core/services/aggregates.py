"""Loading aggregates: the latest snapshot plus the events after it, never fewer.

An :class:`Aggregate` says how one kind of state is built from its stream's events (an
initial state and a pure ``evolve``) and how it is written to and read from a snapshot.
:class:`AggregateLoader` loads it from an :class:`~portfolio_core.ports.EventStore` and a
:class:`~portfolio_core.ports.SnapshotStore`, and saves a new snapshot when its policy says.

Contract
--------
* ``load(stream)`` returns the state after *every* event of the stream at the moment of
  reading: it starts from the stored snapshot only after checking that the stream holds
  the snapshot's version, then applies every event after it, page by page, until the
  end. A snapshot therefore never hides an event appended after it; one that claims more
  events than the stream has (a snapshot of another store, a recreated stream) is ignored
  and the stream is replayed from the start.
* A stream without events loads as ``initial()`` at version 0.
* Snapshot schemas: a snapshot saved at an older ``schema_version`` is brought to the
  current one by the aggregate's ``snapshot_upcasters`` (registered under the aggregate's
  ``name``); a failing step raises :class:`~portfolio_core.ports.errors.UpcastError` naming
  ``snapshot:<stream>`` and the version. One saved by newer code (a higher schema than
  this code knows) is ignored, and the stream replayed, so old and new code can run side
  by side during a deployment.
* After a load the ``policy`` decides whether to save a snapshot of the result (the
  default, :func:`every` 100 events replayed since the snapshot used). A snapshot that
  cannot be saved because the store is unavailable does not fail the load (it is counted
  in ``snapshot_failures``); a state ``to_snapshot`` cannot encode raises InvalidInputError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from portfolio_core.ports.errors import NotFoundError, UnavailableError
from portfolio_core.ports.event_store import EventStore, RecordedEvent
from portfolio_core.ports.snapshot_store import Snapshot, SnapshotStore
from portfolio_core.services.upcasting import Upcasters

__all__ = ["Aggregate", "AggregateLoader", "Loaded", "SnapshotPolicy", "every"]

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Aggregate(Generic[S]):
    """How one kind of aggregate is built from its events and kept in snapshots.

    ``evolve`` must be pure (the same state and event give the same result): a state
    loaded from a snapshot then equals the state replayed from the start.
    """

    name: str
    initial: Callable[[], S]
    evolve: Callable[[S, RecordedEvent], S]
    to_snapshot: Callable[[S], Mapping[str, Any]]
    from_snapshot: Callable[[Mapping[str, Any]], S]
    snapshot_upcasters: Upcasters | None = None

    @property
    def snapshot_schema(self) -> int:
        """The schema version snapshots are saved at (1 + the registered steps)."""
        upcasters = self.snapshot_upcasters
        return 1 if upcasters is None else upcasters.current_version(self.name)


@dataclass(frozen=True, slots=True)
class Loaded(Generic[S]):
    """A loaded aggregate: its state after ``version`` events.

    ``snapshot_version`` is the version of the snapshot it started from (0: none) and
    ``replayed`` the number of events applied after it.
    """

    stream: str
    state: S
    version: int
    snapshot_version: int
    replayed: int


SnapshotPolicy = Callable[[Loaded[Any]], bool]
"""Whether to save a snapshot of a just-loaded aggregate."""


def every(n: int) -> SnapshotPolicy:
    """Snapshot when at least ``n`` events were replayed on top of the last snapshot."""
    if n < 1:
        raise ValueError("n must be >= 1")
    return lambda loaded: loaded.replayed >= n


class AggregateLoader(Generic[S]):
    """Loads aggregates of one kind; see the module docstring for the contract."""

    def __init__(
        self,
        events: EventStore,
        snapshots: SnapshotStore,
        aggregate: Aggregate[S],
        *,
        policy: SnapshotPolicy | None = None,
        page_size: int = 1000,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.events = events
        self.snapshots = snapshots
        self.aggregate = aggregate
        self.policy = policy if policy is not None else every(100)
        self.page_size = page_size
        self.snapshot_failures = 0
        """Snapshots the loader could not save because the snapshot store was unavailable."""

    async def load(self, stream: str) -> Loaded[S]:
        """The aggregate of ``stream`` after all its events (see the module docstring)."""
        aggregate = self.aggregate
        state, version, base = aggregate.initial(), 0, 0
        page: list[RecordedEvent] = []
        snapshot = await self.snapshots.load(stream)
        if snapshot is not None and snapshot.schema_version <= aggregate.snapshot_schema:
            try:
                # from the snapshot's own version: proves the stream reaches it
                page = await self.events.read(stream, snapshot.version, self.page_size)
            except NotFoundError:
                page = []
            if page and page[0].version == snapshot.version:
                state = aggregate.from_snapshot(self._upcast(snapshot))
                version = base = snapshot.version
                page = page[1:]
                full = True
            else:
                page, full = [], False
        else:
            full = False
        if not full and version == 0:
            try:
                page = await self.events.read(stream, 1, self.page_size)
            except NotFoundError:
                page = []
            full = len(page) == self.page_size
        else:
            full = len(page) + 1 == self.page_size
        evolve = aggregate.evolve
        while True:
            for event in page:
                state = evolve(state, event)
                version = event.version
            if not full:
                break
            page = await self.events.read(stream, version + 1, self.page_size)
            full = len(page) == self.page_size
        loaded = Loaded(stream, state, version, base, version - base)
        if version > base and self.policy(loaded):
            await self.save_snapshot(loaded)
        return loaded

    async def save_snapshot(self, loaded: Loaded[S]) -> bool:
        """Save a snapshot of ``loaded``; False when a later one is stored or the store is
        unavailable (counted in ``snapshot_failures``)."""
        aggregate = self.aggregate
        snapshot = Snapshot(
            loaded.stream,
            loaded.version,
            aggregate.to_snapshot(loaded.state),
            aggregate.snapshot_schema,
        )
        try:
            return await self.snapshots.save(snapshot)
        except UnavailableError:
            self.snapshot_failures += 1
            return False

    def _upcast(self, snapshot: Snapshot) -> Mapping[str, Any]:
        aggregate = self.aggregate
        upcasters = aggregate.snapshot_upcasters
        if upcasters is None or snapshot.schema_version == aggregate.snapshot_schema:
            return snapshot.state
        return upcasters.upcast(
            f"snapshot:{snapshot.stream}", aggregate.name, snapshot.schema_version, snapshot.state
        )
