"""A circuit breaker for sync and async calls, bridged onto pybreaker's state and storage.

pybreaker keeps the state (closed / open / half-open), the counters and the ``opened_at``
time in a storage object (in memory, or in Redis with ``CircuitRedisStorage`` so several
processes share one breaker), and notifies listeners of every transition. Its ``call`` holds a
lock around the guarded call and has no asyncio support, so we do not use it: this bridge asks
*before* a call whether it may run (`Breaker.admit`) and reports the outcome *after* it
(`Breaker.on_success`, `Breaker.on_failure`, `Breaker.on_cancel`). Nothing is
held across the call, so concurrent async calls run concurrently; transitions go through
pybreaker's own ``open()``, ``half_open()`` and ``close()``.

Guarantees:

* half-open admits exactly one probe at a time in this process (a non-blocking lock); other
  callers are refused until the probe's outcome is known;
* cancellation (``asyncio.CancelledError``, ``KeyboardInterrupt``, ...) is not a failure; a
  cancelled probe frees the probe slot without changing the state;
* listeners are wrapped: one that raises is logged and ignored, the call and the transition
  still happen;
* the reset timeout is measured with a monotonic clock (injectable), from the moment this
  process first saw the breaker open; pybreaker's wall-clock ``opened_at`` is only used to
  notice that another process re-opened a shared breaker;
* `Breaker.health` reads the state for health checks without changing it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pybreaker
import structlog

from portfolio_core.ports.errors import PortError, UnavailableError

__all__ = ["Breaker", "BreakerStorageError", "CircuitOpenError", "is_failure"]

_log = structlog.get_logger("portfolio_core.boundary.breaker")

#: fallback state given to pybreaker's Redis storage: it reports this when Redis fails.
STORAGE_UNAVAILABLE = "storage-unavailable"
CLOSED = pybreaker.STATE_CLOSED
OPEN = pybreaker.STATE_OPEN
HALF_OPEN = pybreaker.STATE_HALF_OPEN


STORAGE_WARNING_INTERVAL = 30.0
"""Seconds between two warnings that one breaker's storage is unavailable."""


class _StorageLog:
    """One structured warning per breaker at most every ``interval`` seconds while its
    storage fails, counting the ones suppressed in between; never a traceback.

    Stands in for pybreaker's logger on a Redis storage (which logs a full traceback on
    every call while Redis is down) and carries the bridge's own storage warnings."""

    def __init__(
        self,
        breaker: str,
        *,
        interval: float = STORAGE_WARNING_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._breaker = breaker
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next: float | None = None
        self._suppressed = 0

    def warn(self, event: str, **fields: Any) -> None:
        with self._lock:
            now = self._clock()
            if self._next is not None and now < self._next:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._next = now + self._interval
        _log.warning(event, breaker=self._breaker, suppressed=suppressed, **fields)

    def _from_pybreaker(self, message: object, *args: object, **kwargs: object) -> None:
        error = sys.exc_info()[1]
        self.warn(
            "breaker storage unavailable",
            error=type(error).__name__ if error is not None else None,
            detail=str(message),
        )

    exception = error = warning = _from_pybreaker


class CircuitOpenError(UnavailableError):
    """The circuit breaker refused the call (open, or half-open with its probe in flight)."""


class BreakerStorageError(UnavailableError):
    """The breaker's shared storage could not be reached and the policy is fail closed."""


def is_failure(exc: BaseException) -> bool:
    """Whether ``exc`` counts against the breaker: any ``Exception`` except a non-retryable
    port error (the caller's fault: invalid input, not found, conflict, unsupported...)."""
    if not isinstance(exc, Exception):
        return False
    if isinstance(exc, PortError):
        return exc.retryable
    return True


StateListener = Callable[[str, str], None]


class _SafeListener(pybreaker.CircuitBreakerListener):
    """Forwards pybreaker's ``state_change`` to a callback; never lets it raise."""

    def __init__(self, callback: StateListener, breaker_name: str) -> None:
        self._callback = callback
        self._name = breaker_name

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else "none"
        try:
            self._callback(old, new_state.name)
        except Exception:
            _log.exception("breaker listener failed", breaker=self._name)


class Breaker:
    """One circuit breaker; see the module docstring for the guarantees.

    ``storage`` is a pybreaker storage (default: a new ``CircuitMemoryStorage``).
    ``fail_open_on_storage_error`` decides what a storage failure does: let the call through
    (True) or refuse it with `BreakerStorageError`.
    """

    def __init__(
        self,
        name: str,
        *,
        fail_max: int = 5,
        reset_timeout: float = 30.0,
        success_threshold: int = 1,
        storage: pybreaker.CircuitBreakerStorage | None = None,
        clock: Callable[[], float] = time.monotonic,
        fail_open_on_storage_error: bool = True,
    ) -> None:
        self.name = name
        self._storage = storage or pybreaker.CircuitMemoryStorage(CLOSED)
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            success_threshold=success_threshold,
            state_storage=self._storage,
            name=name,
        )
        self._reset_timeout = reset_timeout
        self._fail_max = fail_max
        self._success_threshold = success_threshold
        self._clock = clock
        self._fail_open = fail_open_on_storage_error
        self._probe = threading.Lock()
        self._opened_seen: float | None = None  # monotonic time this process saw it open
        self._opened_marker: object = None  # storage opened_at when we saw it
        self._in_memory = isinstance(self._storage, pybreaker.CircuitMemoryStorage)
        shared_log = getattr(self._storage, "logger", None)
        self._storage_log = (
            shared_log if isinstance(shared_log, _StorageLog) else _StorageLog(name, clock=clock)
        )

    # -- listeners ---------------------------------------------------------------------
    def add_listener(self, callback: StateListener) -> None:
        """Call ``callback(old_state, new_state)`` on every transition; its errors are
        logged and swallowed."""
        self._cb.add_listener(_SafeListener(callback, self.name))

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` as the storage says."""
        return str(self._cb.current_state)

    def health(self) -> tuple[bool, str]:
        """What this breaker means for its adapter's health right now, as
        ``(healthy, detail)``; the detail never names the breaker's storage.

        * closed: ``(True, "")`` -- the breaker has nothing to say;
        * open: not healthy, the detail saying until when calls are refused or, once the
          reset timeout has passed, that the next call will be admitted as a probe;
        * half-open: healthy, the detail saying that calls are being probed;
        * storage unreadable: like closed when failing open (calls go through), not healthy
          when failing closed (calls are refused).

        Reading never changes the state: it admits no call and does not move an open breaker
        to half-open. Raises nothing.
        """
        try:
            state = str(self._storage.state)
        except Exception:
            state = STORAGE_UNAVAILABLE
        if state == CLOSED:
            return True, ""
        if state == OPEN:
            remaining = self._remaining_open(self._clock())
            if remaining <= 0:
                return False, (
                    "circuit breaker open; reset timeout passed, "
                    "the next call is admitted as a probe"
                )
            until = datetime.now(UTC) + timedelta(seconds=remaining)
            left = f"{remaining:.1f} s" if remaining >= 1 else f"{remaining * 1000:.0f} ms"
            return False, (
                f"circuit breaker open; calls refused until {until:%H:%M:%S} UTC (in {left})"
            )
        if state == HALF_OPEN:
            needed = (
                "one succeeds"
                if self._success_threshold <= 1
                else f"{self._success_threshold} in a row succeed"
            )
            return True, f"circuit breaker half-open; probing one call at a time until {needed}"
        if self._fail_open:
            return True, ""
        return False, "circuit breaker storage unavailable; calls refused (fail closed)"

    def refusing_for(self) -> float | None:
        """Seconds for which an open breaker still refuses calls (``0.0`` once its reset
        timeout passed: the next call is admitted as a probe); ``None`` when it is not open
        or its storage cannot be read. Like `health`, reading changes nothing."""
        try:
            state = str(self._storage.state)
        except Exception:
            return None
        if state != OPEN:
            return None
        return max(0.0, self._remaining_open(self._clock()))

    @property
    def pybreaker(self) -> pybreaker.CircuitBreaker:
        """The underlying pybreaker breaker (for its listeners API and inspection)."""
        return self._cb

    # -- admission ---------------------------------------------------------------------
    def admit(self) -> bool:
        """Decide whether a call may run now. Returns True when the call is the half-open
        probe (its outcome must be reported with ``probe=True``). Raises
        `CircuitOpenError` when refused."""
        try:
            state = self._storage.state
        except Exception as exc:
            return self._storage_failed(exc)
        if state == CLOSED:
            return False
        return self._admit_slow(state)

    def _admit_slow(self, state: str) -> bool:
        now = self._clock()
        if state == OPEN:
            remaining = self._remaining_open(now)
            if remaining > 0:
                raise CircuitOpenError(f"circuit {self.name!r} is open", retry_after=remaining)
            if not self._probe.acquire(blocking=False):
                raise CircuitOpenError(
                    f"circuit {self.name!r} is half-open and its probe is in flight",
                    retry_after=0.0,
                )
            try:
                self._cb.half_open()
            except Exception as exc:
                self._probe.release()
                return self._storage_failed(exc)
            return True
        if state == HALF_OPEN:
            if not self._probe.acquire(blocking=False):
                raise CircuitOpenError(
                    f"circuit {self.name!r} is half-open and its probe is in flight",
                    retry_after=0.0,
                )
            return True
        # pybreaker's Redis storage reports its fallback state when Redis fails; we give it
        # STORAGE_UNAVAILABLE as that fallback so the policy below decides.
        return self._storage_failed(RuntimeError(f"breaker storage reported {state!r}"))

    def _remaining_open(self, now: float) -> float:
        marker: object = None
        if not self._in_memory:
            try:
                marker = self._storage.opened_at
            except Exception:
                marker = self._opened_marker
        if self._opened_seen is None or marker != self._opened_marker:
            self._opened_seen = now
            self._opened_marker = marker
        return self._opened_seen + self._reset_timeout - now

    def _storage_failed(self, exc: Exception) -> bool:
        self._storage_log.warn(
            "breaker storage unavailable",
            error=type(exc).__name__,
            policy="open" if self._fail_open else "closed",
        )
        if self._fail_open:
            return False
        raise BreakerStorageError(
            f"circuit {self.name!r}: breaker storage unavailable (fail closed)"
        ) from exc

    # -- outcomes ----------------------------------------------------------------------
    def on_success(self, probe: bool) -> None:
        """The admitted call returned normally."""
        if probe:
            try:
                self._storage.increment_success_counter()
                if self._storage.success_counter >= self._success_threshold:
                    self._cb.close()
                    self._opened_seen = None
            except Exception as exc:
                self._storage_log.warn("breaker storage unavailable", error=type(exc).__name__)
            finally:
                self._probe.release()
            return
        storage = self._storage
        try:
            if storage.counter:
                storage.reset_counter()
        except Exception as exc:
            self._storage_log.warn("breaker storage unavailable", error=type(exc).__name__)

    def on_failure(self, exc: BaseException, probe: bool) -> None:
        """The admitted call raised ``exc``: counted only if `is_failure` says so."""
        if not is_failure(exc):
            if isinstance(exc, Exception):
                self.on_success(probe)
            else:
                self.on_cancel(probe)
            return
        try:
            if probe:
                self._open()
            else:
                self._storage.increment_counter()
                if self._storage.counter >= self._fail_max and self._storage.state == CLOSED:
                    self._open()
        except Exception as err:
            self._storage_log.warn("breaker storage unavailable", error=type(err).__name__)
        finally:
            if probe:
                self._probe.release()

    def on_cancel(self, probe: bool) -> None:
        """The admitted call was cancelled: nothing is counted; a probe frees its slot."""
        if probe:
            self._probe.release()

    def _open(self) -> None:
        self._cb.open()
        self._opened_seen = self._clock()
        if not self._in_memory:
            try:
                self._opened_marker = self._storage.opened_at
            except Exception:
                self._opened_marker = None

    # -- manual control ----------------------------------------------------------------
    def open(self) -> None:
        """Force the breaker open (e.g. from an operator command)."""
        self._open()

    def close(self) -> None:
        """Force the breaker closed and reset its counters."""
        self._cb.close()
        self._opened_seen = None


def make_storage(uri: str, name: str, fail_open: bool) -> pybreaker.CircuitBreakerStorage:
    """pybreaker storage for ``uri``: ``memory://`` or ``redis://...`` (shared by name).

    With Redis, the storage's fallback state is ``closed`` when failing open and
    `STORAGE_UNAVAILABLE` when failing closed, so `Breaker` applies the policy.
    Raises [UnavailableError][portfolio_core.boundary.breaker.UnavailableError] when Redis cannot be
    reached while wiring.
    """
    if uri.startswith("memory://"):
        return pybreaker.CircuitMemoryStorage(CLOSED)
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the redis extra is missing
        raise UnavailableError("a redis:// breaker storage needs the 'redis' extra") from exc
    client = redis.Redis.from_url(uri, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        storage = pybreaker.CircuitRedisStorage(
            CLOSED,
            client,
            namespace=name,
            fallback_circuit_state=CLOSED if fail_open else STORAGE_UNAVAILABLE,
        )
        storage.logger = _StorageLog(name)  # type: ignore[assignment]  # no traceback per call
        return storage
    except redis.RedisError as exc:
        raise UnavailableError(
            f"circuit breaker {name!r}: its Redis storage cannot be reached"
        ) from exc
