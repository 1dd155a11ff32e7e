"""A child process for the EventStore fault and race tests (run with ``python -m``).

python -m tests.adapters.event_store_worker crash <kind> <target> [<writers>]
    appends 4-event batches forever from <writers> concurrent tasks (default 1; several make
    the SQL stores group their commits), printing "ack <n>" after each acknowledged append
python -m tests.adapters.event_store_worker race <kind> <target> <writer> <count>
    appends <count> events to stream "race" with expected versions, retrying on conflict
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from portfolio_core.ports import NewEvent, NotFoundError, WrongExpectedVersionError


def open_store(kind: str, target: str) -> Any:
    if kind == "file":
        from portfolio_core.adapters.file.event_store import FileEventStore

        return FileEventStore(target)
    if kind == "sqlite":
        from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore

        return SQLiteEventStore(target)
    from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore

    url, table = target.rsplit("#", 1)
    return PostgresEventStore(url, table=table, pool_size=1)


async def crash(kind: str, target: str, writers: int = 1) -> None:
    store = open_store(kind, target)
    await store.start()
    pid = os.getpid()

    async def writer(w: int) -> None:
        for i in range(100_000):
            n = f"{pid}-{w}-{i}"
            await store.append(f"b{n}", [NewEvent("E", {"n": n, "k": k}) for k in range(4)], 0)
            print(f"ack {n}", flush=True)

    await asyncio.gather(*(writer(w) for w in range(writers)))


async def race(store: Any, writer: int, count: int) -> int:
    done = conflicts = 0
    while done < count:
        try:
            current = len(await store.read("race"))
        except NotFoundError:
            current = 0
        try:
            await store.append("race", [NewEvent("E", {"w": writer, "k": done})], current)
            done += 1
        except WrongExpectedVersionError:
            conflicts += 1
            await asyncio.sleep(0.001 * (writer % 3))
        if conflicts > 10_000:
            raise RuntimeError("livelock")
    return conflicts


async def race_process(kind: str, target: str, first: int, writers: int, count: int) -> None:
    store = open_store(kind, target)
    await store.start()
    try:
        await asyncio.gather(*(race(store, first + w, count) for w in range(writers)))
    finally:
        await store.aclose()


if __name__ == "__main__":
    mode, kind, target, *rest = sys.argv[1:]
    if mode == "crash":
        asyncio.run(crash(kind, target, *(int(x) for x in rest)))
    else:
        asyncio.run(race_process(kind, target, *(int(x) for x in rest)))
