"""Deterministic concurrency for contract tests: barriers, not sleeps.

``run_concurrently(n, op)`` starts ``n`` tasks that all wait on one ``asyncio.Barrier`` and
then call ``op(i)`` together, so every task has reached the race before any proceeds — no
sleeps, no timing luck. ``one_winner`` checks the classic outcome of such a race: exactly one
call succeeded and every other one failed with the expected error.

For sync ports, ``run_in_threads`` does the same with a ``threading.Barrier``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

__all__ = ["one_winner", "run_concurrently", "run_in_threads"]

T = TypeVar("T")


async def run_concurrently(
    n: int, op: Callable[[int], Awaitable[T]], *, timeout: float = 30.0
) -> list[T | BaseException]:
    """Run ``op(0) ... op(n-1)`` as ``n`` tasks released together by a barrier.

    Returns each task's result or the exception it raised, in index order. Raises
    ``TimeoutError`` when the tasks do not all finish within ``timeout`` seconds.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    barrier = asyncio.Barrier(n)

    async def contender(i: int) -> T:
        await barrier.wait()
        return await op(i)

    async with asyncio.timeout(timeout):
        return list(await asyncio.gather(*(contender(i) for i in range(n)), return_exceptions=True))


def run_in_threads(
    n: int, op: Callable[[int], T], *, timeout: float = 30.0
) -> list[T | BaseException]:
    """Run ``op(i)`` in ``n`` threads released together by a barrier; results in index order."""
    if n < 1:
        raise ValueError("n must be at least 1")
    barrier = threading.Barrier(n)
    results: list[T | BaseException | None] = [None] * n

    def contender(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = op(i)
        except BaseException as exc:  # recorded, then re-examined by the caller
            results[i] = exc

    threads = [threading.Thread(target=contender, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"a thread did not finish within {timeout} s")
    return cast(list[T | BaseException], results)


def one_winner(
    results: Sequence[T | BaseException],
    loser: type[BaseException] | tuple[type[BaseException], ...],
) -> T:
    """Assert exactly one result is a success and every other is a ``loser`` error.

    Returns the winner's result. The assertion message lists what each contender got.
    """
    wins = [r for r in results if not isinstance(r, BaseException)]
    others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, loser)]
    names = loser.__name__ if isinstance(loser, type) else "/".join(c.__name__ for c in loser)
    summary = ", ".join(type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results)
    assert not others, f"contenders failed with unexpected errors: {others!r} ({summary})"
    assert len(wins) == 1, (
        f"expected exactly one of {len(results)} concurrent calls to win and the rest to "
        f"raise {names}; got {len(wins)} winners ({summary})"
    )
    return wins[0]
