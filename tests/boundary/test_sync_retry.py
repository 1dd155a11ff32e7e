"""Retry around a synchronous port: retryable failures are retried up to ``attempts``, the
caller's own errors are not retried at all."""

from __future__ import annotations

from typing import Any

import pytest

from portfolio_core.boundary import wrap
from portfolio_core.ports import InvalidInputError, PortError, UnavailableError, port_by_key


class FlakyStore:
    """A CacheStore whose ``get`` raises the queued errors first."""

    block_size = 16

    def __init__(self, *errors: PortError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def get(self, agent_id: str, tokens: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "hit"

    def put(self, agent_id: str, blocks: Any) -> None: ...

    def evict(self, agent_id: str) -> bool:
        return False

    def delete(self, agent_id: str) -> bool:
        return False

    def pin(self, agent_id: str) -> None: ...

    def unpin(self, agent_id: str) -> bool:
        return False

    def stats(self) -> Any:
        return None


def retried(store: FlakyStore, attempts: int) -> Any:
    return wrap(
        store,
        port=port_by_key("cache_store"),
        name="s",
        adapter_type="t",
        telemetry=None,
        protection={"retry": {"attempts": attempts, "backoff": 0, "jitter": 0}},
    )


def test_retryable_failures_are_retried_until_a_call_succeeds() -> None:
    store = FlakyStore(UnavailableError("down"), UnavailableError("still down"))
    assert retried(store, 3).get("a", [1]) == "hit"
    assert store.calls == 3


def test_the_last_failure_is_raised_when_the_attempts_run_out() -> None:
    store = FlakyStore(UnavailableError("one"), UnavailableError("two"))
    with pytest.raises(UnavailableError, match="two"):
        retried(store, 2).get("a", [1])
    assert store.calls == 2


def test_the_callers_own_errors_are_not_retried() -> None:
    store = FlakyStore(InvalidInputError("bad tokens"))
    with pytest.raises(InvalidInputError, match="bad tokens"):
        retried(store, 5).get("a", [1])
    assert store.calls == 1
