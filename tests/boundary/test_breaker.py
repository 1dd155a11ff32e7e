"""The breaker over a shared storage that fails: counting never raises into the call, an open
breaker times its reset from when this process saw it open, and cancellations never count."""

from __future__ import annotations

import asyncio
from typing import Any

import pybreaker

from portfolio_core.boundary import Breaker
from portfolio_core.boundary.breaker import is_failure
from portfolio_core.ports import InvalidInputError, UnavailableError
from tests.support.boundary import FakeClock


class SharedStorage(pybreaker.CircuitBreakerStorage):  # type: ignore[misc]
    """A storage shared between processes (not pybreaker's in-memory one) whose every access
    fails while ``down``; ``opened_at`` alone fails while ``no_opened_at``."""

    def __init__(self) -> None:
        super().__init__("shared")
        self._kept = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self.down = False
        self.no_opened_at = False

    def _reach(self) -> pybreaker.CircuitMemoryStorage:
        if self.down:
            raise ConnectionError("storage down")
        return self._kept

    @property
    def state(self) -> str:
        return str(self._reach().state)

    @state.setter
    def state(self, value: str) -> None:
        self._reach().state = value

    def increment_counter(self) -> None:
        self._reach().increment_counter()

    def reset_counter(self) -> None:
        self._reach().reset_counter()

    def increment_success_counter(self) -> None:
        self._reach().increment_success_counter()

    def reset_success_counter(self) -> None:
        self._reach().reset_success_counter()

    @property
    def counter(self) -> int:
        return int(self._reach().counter)

    @property
    def success_counter(self) -> int:
        return int(self._reach().success_counter)

    @property
    def opened_at(self) -> Any:
        if self.no_opened_at:
            raise ConnectionError("opened_at unreadable")
        return self._reach().opened_at

    @opened_at.setter
    def opened_at(self, value: Any) -> None:
        self._reach().opened_at = value


def test_counting_while_the_storage_is_down_never_raises_into_the_call() -> None:
    storage = SharedStorage()
    breaker = Breaker("b", fail_max=2, storage=storage, clock=FakeClock())
    breaker.on_failure(UnavailableError("x"), False)
    storage.down = True
    breaker.on_failure(UnavailableError("y"), False)  # not counted: the storage is down
    breaker.on_success(False)
    assert breaker.refusing_for() is None  # its state cannot be read
    storage.down = False
    assert breaker.state == "closed"
    assert storage.counter == 1


def test_a_probe_that_succeeds_while_the_storage_is_down_does_not_raise() -> None:
    storage = SharedStorage()
    clock = FakeClock()
    breaker = Breaker("b", fail_max=1, reset_timeout=5, storage=storage, clock=clock)
    breaker.on_failure(UnavailableError("x"), False)
    assert breaker.state == "open"
    clock.now += 6
    assert breaker.admit() is True  # the probe
    storage.down = True
    breaker.on_success(True)
    storage.down = False
    assert breaker.state == "half-open"  # the success could not be recorded


def test_an_open_breaker_without_a_readable_opened_at_counts_from_when_it_saw_it() -> None:
    storage = SharedStorage()
    storage.no_opened_at = True
    clock = FakeClock()
    breaker = Breaker("b", fail_max=1, reset_timeout=30, storage=storage, clock=clock)
    breaker.on_failure(UnavailableError("x"), False)
    assert breaker.refusing_for() == 30.0
    clock.now += 10
    assert breaker.refusing_for() == 20.0


def test_cancellations_and_the_callers_own_errors_never_count() -> None:
    assert is_failure(asyncio.CancelledError()) is False
    assert is_failure(InvalidInputError("bad")) is False
    assert is_failure(RuntimeError("boom")) is True
    breaker = Breaker("b", fail_max=1, clock=FakeClock())
    breaker.on_failure(asyncio.CancelledError(), False)
    breaker.on_failure(InvalidInputError("bad"), False)
    assert breaker.state == "closed"
