"""The kit's concurrency helpers: contenders start together and every result or error comes
back in index order; ``one_winner`` fails naming what each contender got."""

from __future__ import annotations

import threading

import pytest

from portfolio_core.ports import ConflictError
from portfolio_core.testing.concurrency import one_winner, run_concurrently, run_in_threads


async def test_tasks_report_results_and_errors_in_index_order() -> None:
    async def op(i: int) -> int:
        if i == 1:
            raise ConflictError("lost")
        return i * 10

    results = await run_concurrently(3, op)
    assert results[0] == 0
    assert isinstance(results[1], ConflictError)
    assert results[2] == 20
    with pytest.raises(ValueError, match="n must be at least 1"):
        await run_concurrently(0, op)


def test_threads_report_results_in_order_and_a_stuck_thread_times_out() -> None:
    assert run_in_threads(3, lambda i: i + 1) == [1, 2, 3]
    with pytest.raises(ValueError, match="n must be at least 1"):
        run_in_threads(0, lambda i: i)
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 s"):
            run_in_threads(1, lambda i: release.wait(10), timeout=0.2)
    finally:
        release.set()


def test_one_winner_returns_it_and_explains_any_other_outcome() -> None:
    lost = ConflictError("lost")
    assert one_winner([lost, "won", lost], ConflictError) == "won"
    with pytest.raises(AssertionError, match=r"got 2 winners \(ok, ok, ConflictError\)"):
        one_winner(["a", "b", lost], ConflictError)
    with pytest.raises(AssertionError, match="unexpected errors"):
        one_winner(["a", RuntimeError("boom")], (ConflictError, KeyError))
