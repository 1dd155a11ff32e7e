"""Deliberately broken variants of the memory ProjectionStore, one bug each.

Each names in ``clause`` the contract clause its bug must break; tests/testing/
test_projection_store_broken.py asserts the ProjectionStore contract suite fails on it.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from portfolio_core.adapters._shared.projections import Held
from portfolio_core.adapters.memory.projection_store import MemoryProjectionStore
from portfolio_core.ports.projection_store import Effect, Lease

__all__ = ["VARIANTS", "MemoryProjectionStore"]


class _Broken(MemoryProjectionStore):
    clause: ClassVar[str] = ""


class CheckpointBeforeEffect(_Broken):
    """Moves the checkpoint, then runs the effect."""

    clause = "projection_store.effect_first"

    async def commit(self, lease: Lease, position: int, effect: Effect | None = None) -> None:
        await super().commit(lease, position)
        if effect is not None:
            await effect(None)


class RunnerSeesCheckpointEarly(CheckpointBeforeEffect):
    clause = "projection_store.runner.checkpoint_after_effect"


class CheckpointRoundsUp(_Broken):
    """Reports one position more than committed: a restarted runner skips an event."""

    clause = "projection_store.runner.no_gaps"

    async def checkpoint(self, projection: str) -> int:
        found = await super().checkpoint(projection)
        return found + 1 if found else 0


class OneCheckpointForAll(_Broken):
    """Keeps one checkpoint for every projection: a new projection starts mid-log."""

    clause = "projection_store.runner.rebuild_equals_live"

    async def checkpoint(self, projection: str) -> int:
        return max(self._checkpoints.values(), default=0)


class GoesBackwards(_Broken):
    clause = "projection_store.forward_only"

    async def commit(self, lease: Lease, position: int, effect: Effect | None = None) -> None:
        self._checkpoints.pop(lease.projection, None)
        await super().commit(lease, position, effect)


class ResetIsNoop(_Broken):
    clause = "projection_store.reset"

    async def reset(self, projection: str) -> None:
        return None


class SharedLease(_Broken):
    """Hands the lease to whoever asks."""

    clause = "projection_store.lease.exclusive"

    async def claim(self, projection: str, owner: str, ttl: float) -> Lease | None:
        self._leases.pop(projection, None)
        return await super().claim(projection, owner, ttl)


class RacyClaim(_Broken):
    """Reads the lease, yields to the loop, then writes it."""

    clause = "projection_store.lease.concurrent"

    async def claim(self, projection: str, owner: str, ttl: float) -> Lease | None:
        held = self._leases.get(projection)
        await asyncio.sleep(0)
        if held is not None and held.owner not in (None, owner) and held.expires_at > self._now():
            return None
        token = (held.token if held else 0) + 1
        self._leases[projection] = Held(owner, token, self._now() + ttl)
        return Lease(projection, owner, token, self._now() + ttl)


class ReleasesAnyLease(_Broken):
    """Frees the lease whoever asks, even with an old lease."""

    clause = "projection_store.lease.release"

    async def release(self, lease: Lease) -> None:
        held = self._leases.get(lease.projection)
        if held is not None:
            self._leases[lease.projection] = Held(None, held.token, 0.0)


class NoFencing(_Broken):
    """Lets any lease of the projection commit."""

    clause = "projection_store.lease.expiry"

    async def commit(self, lease: Lease, position: int, effect: Effect | None = None) -> None:
        held = self._leases.get(lease.projection)
        if held is not None:
            lease = Lease(lease.projection, held.owner or lease.owner, held.token, 0.0)
            self._leases[lease.projection] = Held(lease.owner, held.token, float("inf"))
        await super().commit(lease, position, effect)


class AcceptsNanTtl(_Broken):
    clause = "projection_store.invalid"

    async def claim(self, projection: str, owner: str, ttl: Any) -> Lease | None:
        if ttl != ttl:  # NaN
            ttl = 30.0
        return await super().claim(projection, owner, ttl)


class HalfTtl(_Broken):
    """Leases expire after half their ttl."""

    clause = "projection_store.lease.duration"

    async def claim(self, projection: str, owner: str, ttl: float) -> Lease | None:
        return await super().claim(projection, owner, ttl / 2)


VARIANTS: list[type[_Broken]] = [
    CheckpointBeforeEffect,
    RunnerSeesCheckpointEarly,
    CheckpointRoundsUp,
    OneCheckpointForAll,
    GoesBackwards,
    ResetIsNoop,
    SharedLease,
    RacyClaim,
    ReleasesAnyLease,
    NoFencing,
    AcceptsNanTtl,
    HalfTtl,
]
