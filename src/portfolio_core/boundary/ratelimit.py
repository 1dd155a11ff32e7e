"""Rate limiting at the boundary, over the ``limits`` library.

One `RateLimiter` guards one adapter. Its key is ``<prefix>:<port>:<adapter>`` and,
when ``per_tenant`` is on and a tenant is current (``ports.current_tenant()``), the tenant id
is appended, so each tenant has its own budget. The storage is chosen by URI
(``memory://``, ``redis://host:port/db``); async ports use ``limits``' async storage and
strategies, sync ports the sync ones.

A refused call raises [RateLimitedError][portfolio_core.ports.errors.RateLimitedError] whose
``retry_after`` is the number of seconds until the window frees a permit.

Leases (``lease > 1``, fixed window only): permits are taken from the storage ``lease`` at a
time and handed out locally until the window that counted them resets, so the shared count
always covers every admitted call (the global limit is never exceeded) while most calls cost
no storage round trip. When fewer than ``lease`` permits remain, permits are taken one by one.

When the storage itself fails (Redis down, or silent for `STORAGE_TIMEOUT` seconds),
``fail_open`` decides: let the call through, or refuse it with
`RateLimitStorageError`. A dropped Redis connection is opened again by a later call.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.storage import storage_from_string

from portfolio_core.ports.errors import RateLimitedError, UnavailableError
from portfolio_core.ports.tenant import current_tenant

__all__ = ["RateLimitStorageError", "RateLimiter"]

_log = structlog.get_logger("portfolio_core.boundary.ratelimit")


class RateLimitStorageError(UnavailableError):
    """The rate limiter's storage could not be reached and the policy is fail closed."""


def _strategy_classes(is_async: bool) -> dict[str, Any]:
    if is_async:
        from limits.aio import strategies as aio

        return {
            "fixed_window": aio.FixedWindowRateLimiter,
            "moving_window": aio.MovingWindowRateLimiter,
            "sliding_window": aio.SlidingWindowCounterRateLimiter,
        }
    from limits import strategies

    return {
        "fixed_window": strategies.FixedWindowRateLimiter,
        "moving_window": strategies.MovingWindowRateLimiter,
        "sliding_window": strategies.SlidingWindowCounterRateLimiter,
    }


STORAGE_TIMEOUT = 1.0
"""Seconds a Redis storage may take to connect, and to answer: past it, the storage counts
as unavailable (``fail_open`` decides), so a silent server cannot hang the calls."""


def _storage_uri(uri: str, is_async: bool) -> tuple[str, dict[str, Any]]:
    options: dict[str, Any] = {}
    if uri.startswith(("redis://", "rediss://")):
        options["socket_connect_timeout"] = STORAGE_TIMEOUT
        options["socket_timeout"] = STORAGE_TIMEOUT
        if is_async:
            options["implementation"] = "redispy"
    if not is_async:
        return uri, options
    return f"async+{uri}", options


class _Lease:
    __slots__ = ("expires", "left")

    def __init__(self) -> None:
        self.left = 0
        self.expires = 0.0


class RateLimiter:
    """One adapter's rate limit; see the module docstring."""

    def __init__(
        self,
        limit: str,
        *,
        key: str,
        strategy: str = "fixed_window",
        storage: str = "memory://",
        per_tenant: bool = True,
        lease: int = 1,
        is_async: bool = False,
        fail_open: bool = True,
    ) -> None:
        self.item: RateLimitItem = parse(limit)
        self.key = key
        self.per_tenant = per_tenant
        self.is_async = is_async
        self.fail_open = fail_open
        self.lease = lease
        uri, options = _storage_uri(storage, is_async)
        self.storage = storage_from_string(uri, wrap_exceptions=True, **options)
        self.strategy = _strategy_classes(is_async)[strategy](self.storage)
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    def _key(self) -> str:
        if self.per_tenant:
            ctx = current_tenant()
            if ctx is not None:
                return f"{self.key}:{ctx.tenant_id}"
        return self.key

    # -- local leases --------------------------------------------------------------------
    def _take_local(self, key: str) -> bool:
        lease = self._leases.get(key)
        if lease is None or lease.left <= 0:
            return False
        with self._lock:
            if lease.left > 0 and time.time() < lease.expires:
                lease.left -= 1
                return True
        return False

    def _window_end(self, key: str) -> float | None:
        """End of the fixed window the last lease was taken in, while it is still running
        (a fixed window's end does not move until it resets), else None."""
        lease = self._leases.get(key)
        if lease is not None and time.time() < lease.expires:
            return lease.expires
        return None

    def _store_lease(self, key: str, count: int, reset_time: float) -> None:
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                if len(self._leases) > 10_000:
                    self._leases.clear()
                lease = self._leases[key] = _Lease()
            lease.left = count
            lease.expires = reset_time

    def _refused(self, reset_time: float) -> RateLimitedError:
        retry_after = max(0.0, reset_time - time.time())
        return RateLimitedError(
            f"rate limit {self.item} exceeded for {self.key!r}", retry_after=retry_after
        )

    def _storage_failed(self, exc: Exception) -> None:
        _log.warning(
            "rate limit storage unavailable",
            key=self.key,
            error=type(exc).__name__,
            policy="open" if self.fail_open else "closed",
        )
        if not self.fail_open:
            raise RateLimitStorageError(
                f"rate limit storage unavailable for {self.key!r} (fail closed)"
            ) from exc

    # -- sync ------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take one permit or raise ``RateLimitedError`` (sync storage)."""
        key = self._key()
        if self.lease > 1 and self._take_local(key):
            return
        strategy = self.strategy
        try:
            if self.lease > 1 and strategy.hit(self.item, key, cost=self.lease):
                reset = self._window_end(key)
                if reset is None:
                    reset = strategy.get_window_stats(self.item, key).reset_time
                self._store_lease(key, self.lease - 1, reset)
                return
            if strategy.hit(self.item, key):
                return
            stats = strategy.get_window_stats(self.item, key)
        except RateLimitedError:
            raise
        except Exception as exc:
            self._storage_failed(exc)
            return
        raise self._refused(stats.reset_time)

    # -- async -----------------------------------------------------------------------------
    async def aacquire(self) -> None:
        """Take one permit or raise ``RateLimitedError`` (async storage)."""
        key = self._key()
        if self.lease > 1 and self._take_local(key):
            return
        strategy = self.strategy
        try:
            if self.lease > 1 and await strategy.hit(self.item, key, cost=self.lease):
                reset = self._window_end(key)
                if reset is None:
                    reset = (await strategy.get_window_stats(self.item, key)).reset_time
                self._store_lease(key, self.lease - 1, reset)
                return
            if await strategy.hit(self.item, key):
                return
            stats = await strategy.get_window_stats(self.item, key)
        except Exception as exc:
            self._storage_failed(exc)
            return
        raise self._refused(stats.reset_time)

    def reset(self) -> None:
        """Forget local leases (the shared counts are untouched)."""
        with self._lock:
            self._leases.clear()
