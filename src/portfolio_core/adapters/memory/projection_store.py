"""The reference ProjectionStore: checkpoints and leases in process, at-least-once effects.

Not transactional: ``commit`` runs the effect (given ``None``), then writes the checkpoint,
both under one asyncio lock per store, so the checkpoint never moves past an effect that
failed. Leases expire by the store's clock (``time.time`` unless a ``clock`` is given).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict

from portfolio_core.adapters._shared.projections import (
    Held,
    check_advance,
    decide_claim,
    lease_lost,
    validate_lease,
    validate_name,
    validate_owner,
    validate_position,
    validate_ttl,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.projection_store import Effect, Lease

__all__ = ["MemoryProjectionStore", "MemoryProjectionStoreConfig"]


class MemoryProjectionStoreConfig(BaseModel):
    """Configuration of :class:`MemoryProjectionStore` (``memory`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")


class MemoryProjectionStore:
    """In-process projection store (the executable specification of the port)."""

    config_model: ClassVar[type[BaseModel]] = MemoryProjectionStoreConfig
    capabilities = declare()

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._now = clock or time.time
        self._checkpoints: dict[str, int] = {}
        self._leases: dict[str, Held] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config: MemoryProjectionStoreConfig) -> Self:
        return cls()

    def __repr__(self) -> str:
        return "MemoryProjectionStore()"

    async def claim(self, projection: str, owner: str, ttl: float) -> Lease | None:
        validate_name(projection)
        validate_owner(owner)
        seconds = validate_ttl(ttl)
        async with self._lock:
            held = decide_claim(self._leases.get(projection), owner, self._now(), seconds)
            if held is None:
                return None
            self._leases[projection] = held
        return Lease(projection, owner, held.token, held.expires_at)

    async def release(self, lease: Lease) -> None:
        validate_lease(lease)
        async with self._lock:
            held = self._leases.get(lease.projection)
            if held is not None and (held.owner, held.token) == (lease.owner, lease.token):
                self._leases[lease.projection] = Held(None, held.token, 0.0)

    async def checkpoint(self, projection: str) -> int:
        validate_name(projection)
        return self._checkpoints.get(projection, 0)

    async def commit(self, lease: Lease, position: int, effect: Effect | None = None) -> None:
        validate_lease(lease)
        validate_position(position)
        async with self._lock:
            error = lease_lost(lease, self._leases.get(lease.projection), self._now())
            if error is not None:
                raise error
            check_advance(lease.projection, self._checkpoints.get(lease.projection, 0), position)
            if effect is not None:
                await effect(None)
            self._checkpoints[lease.projection] = position

    async def reset(self, projection: str) -> None:
        validate_name(projection)
        async with self._lock:
            self._checkpoints.pop(projection, None)
