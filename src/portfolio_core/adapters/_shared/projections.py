"""What every ProjectionStore adapter shares: argument checks and the lease decision."""

from __future__ import annotations

import math
from typing import NamedTuple

from portfolio_core.adapters._shared.codec import is_text
from portfolio_core.ports.errors import InvalidInputError, LeaseLostError
from portfolio_core.ports.projection_store import MAX_PROJECTION_NAME, Lease

__all__ = [
    "PORT",
    "Held",
    "check_advance",
    "decide_claim",
    "lease_lost",
    "validate_lease",
    "validate_name",
    "validate_owner",
    "validate_position",
    "validate_ttl",
]

PORT = "ProjectionStore"


class Held(NamedTuple):
    """A projection's stored lease fields (owner ``None``: free)."""

    owner: str | None
    token: int
    expires_at: float


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_PROJECTION_NAME:
        raise InvalidInputError(
            f"projection must be a str of 1 to {MAX_PROJECTION_NAME} characters",
            field="projection",
            port=PORT,
        )
    if "\x00" in name:
        raise InvalidInputError("projection name holds U+0000", field="projection", port=PORT)
    if not is_text(name):
        raise InvalidInputError(
            "projection name holds a lone surrogate", field="projection", port=PORT
        )
    return name


def validate_owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner or "\x00" in owner or len(owner) > 200:
        raise InvalidInputError(
            "owner must be a str of 1 to 200 characters without U+0000", field="owner", port=PORT
        )
    if not is_text(owner):
        raise InvalidInputError("owner holds a lone surrogate", field="owner", port=PORT)
    return owner


def validate_ttl(ttl: object) -> float:
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise InvalidInputError(
            f"ttl must be a positive number of seconds, got {ttl!r}", field="ttl", port=PORT
        )
    return float(ttl)


def validate_position(position: object) -> int:
    if type(position) is not int or position < 1:
        raise InvalidInputError(
            f"position must be an int >= 1, got {position!r}", field="position", port=PORT
        )
    return position


def validate_lease(lease: object) -> Lease:
    if not isinstance(lease, Lease):
        raise InvalidInputError(
            f"expected a Lease, got {type(lease).__name__}", field="lease", port=PORT
        )
    validate_name(lease.projection)
    return lease


def decide_claim(held: Held | None, owner: str, now: float, ttl: float) -> Held | None:
    """The lease after ``owner`` claims at ``now``, or None when another owner holds it."""
    if held is None:
        return Held(owner, 1, now + ttl)
    if held.owner == owner and held.expires_at > now:
        return Held(owner, held.token, now + ttl)  # renewal: same token
    if held.owner is None or held.expires_at <= now:
        return Held(owner, held.token + 1, now + ttl)
    return None


def lease_lost(lease: Lease, held: Held | None, now: float) -> LeaseLostError | None:
    """The error to raise when ``lease`` is not the projection's current lease at ``now``."""
    if (
        held is not None
        and held.owner == lease.owner
        and held.token == lease.token
        and held.expires_at > now
    ):
        return None
    return LeaseLostError(
        f"the lease of projection {lease.projection!r} (token {lease.token}) is no longer "
        f"held by {lease.owner!r}",
        name=lease.projection,
        port=PORT,
    )


def check_advance(projection: str, checkpoint: int, position: int) -> None:
    """InvalidInputError unless ``position`` is past ``checkpoint``."""
    if position <= checkpoint:
        raise InvalidInputError(
            f"projection {projection!r} is at position {checkpoint}; a commit must move it "
            f"forward (got {position})",
            field="position",
            port=PORT,
        )
