"""A clock the conformance kit controls, for TTLs, expiry and cooldowns.

Adapters with time-dependent behaviour take an injectable ``clock: Callable[[], float]``
(monotonic seconds). The kit passes a `FakeClock` when the adapter factory accepts a
``clock`` parameter, and tests move time forward explicitly instead of sleeping.
"""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock", "FakeWallClock"]


class _Reading:
    """What both clocks share: called like ``time.monotonic``/``time.time``, they return
    the current reading, also readable as `now`."""

    __slots__ = ("_now",)

    _now: float

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """The current reading."""
        return self._now


class FakeClock(_Reading):
    """A monotonic clock that only moves when told to.

    Call it like ``time.monotonic``. It starts at ``start`` (not zero, so code that treats
    ``0.0`` as "unset" is caught) and never goes backwards.

    >>> clock = FakeClock()
    >>> t0 = clock()
    >>> clock.advance(5)
    >>> clock() - t0
    5.0
    """

    __slots__ = ()

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = float(start)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must not be negative)."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        self._now += float(seconds)

    def set(self, now: float) -> None:
        """Jump to ``now``, which must not be earlier than the current reading."""
        if now < self._now:
            raise ValueError(f"a monotonic clock cannot go back (from {self._now} to {now})")
        self._now = float(now)

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` and let other tasks run once; a drop-in for ``asyncio.sleep``."""
        self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now})"


class FakeWallClock(_Reading):
    """A wall clock (``time.time``: seconds since the epoch) the kit moves by hand.

    It starts at the real current time (so timestamps it produces are "now"-ish, as stores
    and their readers expect) and, unlike `FakeClock`, may be set back: wall clocks
    do step back (NTP corrections), and rules such as "``recorded_at`` never decreases" must
    hold when they do. The kit passes one as ``wall_clock=`` to factories that accept it.
    """

    __slots__ = ()

    def __init__(self, start: float | None = None) -> None:
        import time

        self._now = float(time.time() if start is None else start)

    def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds`` (negative: back)."""
        self._now += float(seconds)

    def __repr__(self) -> str:
        return f"FakeWallClock(now={self._now})"
