"""ProjectionStore: where a projection keeps its checkpoint and its lease.

A projection reads the event log in position order and applies each event's effect to a read
model; its checkpoint is the position of the last event whose effect is applied. The runner
(``portfolio_core.services.projections``) drives it; this port is what must be durable.

Contract
--------
Checkpoints
  * ``checkpoint(projection)`` is 0 for a projection never committed (or ``reset``), then
    the ``position`` of its last successful ``commit``.
  * ``commit(lease, position, effect)`` checks that ``lease`` is still the projection's
    current lease (same owner and token, not expired), runs ``effect`` (when given) and sets
    the checkpoint to ``position``, which must be greater than the current checkpoint
    (InvalidInputError otherwise, nothing changed). A lease that is no longer held raises
    :class:`~portfolio_core.ports.errors.LeaseLostError` and the checkpoint does not move;
    the lease is checked first (a lost lease raises LeaseLostError whatever the position).
  * The checkpoint moves only after the effect succeeded: an effect that raises leaves the
    checkpoint where it was (the exception propagates).
  * With ``TRANSACTIONAL``, ``effect`` runs inside the same database transaction as the lease
    check and the checkpoint update and receives that transaction (the adapter documents
    its type): the effect's writes and the checkpoint commit together or not at all, so each
    event's effect is applied exactly once even across crashes and lost leases. Without it,
    ``effect`` receives ``None`` and runs before the checkpoint is written: a crash between
    the two repeats the effect (at least once) -- handlers use the events' positions to be
    idempotent.

Leases
  * ``claim(projection, owner, ttl)`` returns a :class:`Lease` when ``owner`` holds the
    projection's lease afterwards -- it was free, expired, or already ``owner``'s (then it
    is renewed: same token, new expiry) -- and ``None`` while another owner's unexpired
    lease holds it. Each new holder gets a token greater than every earlier one (fencing).
  * ``release(lease)`` frees the lease if it is still that lease; otherwise it does nothing.
  * ``reset(projection)`` sets the checkpoint back to 0 (a rebuild in place); the lease is
    kept.

Bad input raises :class:`~portfolio_core.ports.errors.InvalidInputError`: an empty
projection name, one longer than :data:`MAX_PROJECTION_NAME` or holding U+0000, an empty
owner, a ``ttl`` that is not a positive finite number, a position < 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MAX_PROJECTION_NAME",
    "Effect",
    "Lease",
    "ProjectionStore",
    "ProjectionStoreCapability",
]

MAX_PROJECTION_NAME = 200


class ProjectionStoreCapability(StrEnum):
    TRANSACTIONAL = "projection_store.transactional"
    """``commit`` runs the effect in the checkpoint's transaction (exactly-once effect)."""
    PERSISTENT = "projection_store.persistent"
    SHARED = "projection_store.shared"
    """Runners in several processes may share one projection (one holds the lease)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """The right of ``owner`` to advance ``projection`` until ``expires_at`` (seconds since
    the epoch, by the store's clock). ``token`` increases with every new holder."""

    projection: str
    owner: str
    token: int
    expires_at: float


Effect = Callable[[Any], Awaitable[None]]
"""What a commit applies: given the store's transaction (or ``None``), writes the effect."""


@runtime_checkable
class ProjectionStore(Protocol):
    """Async store of projection checkpoints and leases; see the module docstring."""

    async def claim(self, projection: str, owner: str, ttl: float) -> Lease | None:
        """Take or renew the lease of ``projection`` for ``ttl`` seconds; None if held."""
        ...

    async def release(self, lease: Lease) -> None:
        """Free ``lease`` if it is still the projection's lease; idempotent."""
        ...

    async def checkpoint(self, projection: str) -> int:
        """The position of the last committed event of ``projection`` (0: none)."""
        ...

    async def commit(self, lease: Lease, position: int, effect: Effect | None = None) -> None:
        """Apply ``effect`` and move the checkpoint to ``position``, under ``lease``."""
        ...

    async def reset(self, projection: str) -> None:
        """Set the checkpoint of ``projection`` back to 0."""
        ...
