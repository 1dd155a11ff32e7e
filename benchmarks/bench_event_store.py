"""EventStore throughput: ours against the `eventsourcing` library's application recorders.

Measured in the same run, on SQLite (a file, WAL journal, default synchronous=FULL for both)
and on PostgreSQL (when PORTFOLIO_CORE_BENCH_POSTGRES_URL or PORTFOLIO_CORE_TEST_POSTGRES_URL
is set): 10-event batches appended to new streams, single-event appends to new streams, and
reading the global log in pages of 500. Both sides give the same guarantees: optimistic
concurrency (ours: expected_version=NO_STREAM; eventsourcing: the unique originator version)
and strictly ordered global positions that a tailing reader cannot skip (ours: positions
assigned under the write lock; eventsourcing: a table lock).

Rounds alternate peer and ours; each figure is the median of the rounds. Tables are uniquely
named and dropped at the end. Prints a table, then one JSON line per goal.

    python benchmarks/bench_event_store.py [--rounds 5] [--events 2000] [--dir /dev/shm]

On a slow or busy disk both sides wait for fsync and the ratio tends to 1; ``--dir`` on a
RAM-backed folder measures the software instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from eventsourcing.persistence import StoredEvent

from portfolio_core.adapters.sql.event_store import PostgresEventStore, SQLiteEventStore
from portfolio_core.ports import NewEvent, StreamState

PAYLOAD = {"amount": 12345, "note": "x" * 48}
STATE = json.dumps(PAYLOAD).encode()


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# ------------------------------------------------------------------------------ peer side


def peer_batches(recorder: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n // 10):
        oid = uuid.uuid4()
        recorder.insert_events([StoredEvent(oid, v + 1, "Evt", STATE) for v in range(10)])
    return rate(n // 10 * 10, time.perf_counter() - t0)


def peer_singles(recorder: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "Evt", STATE)])
    return rate(n, time.perf_counter() - t0)


def peer_read(recorder: Any) -> float:
    t0 = time.perf_counter()
    start, count = 1, 0
    while True:
        page = recorder.select_notifications(start, 500)
        if not page:
            break
        count += len(page)
        start = page[-1].id + 1
    return rate(count, time.perf_counter() - t0)


# ------------------------------------------------------------------------------- our side


async def our_batches(store: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n // 10):
        stream = str(uuid.uuid4())
        await store.append(
            stream, [NewEvent("Evt", PAYLOAD) for _ in range(10)], StreamState.NO_STREAM
        )
    return rate(n // 10 * 10, time.perf_counter() - t0)


async def our_singles(store: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await store.append(str(uuid.uuid4()), [NewEvent("Evt", PAYLOAD)], StreamState.NO_STREAM)
    return rate(n, time.perf_counter() - t0)


async def our_read(store: Any) -> float:
    t0 = time.perf_counter()
    start, count = 1, 0
    while True:
        page = await store.read_all(start, 500)
        if not page:
            break
        count += len(page)
        start = page[-1].position + 1
    return rate(count, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------- runs


def run_backend(
    name: str,
    make_peer: Callable[[], Any],
    make_ours: Callable[[], Any],
    rounds: int,
    events: int,
) -> dict[str, tuple[float, float]]:
    peer = make_peer()
    ours = make_ours()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(ours.start())
    results: dict[str, list[tuple[float, float]]] = {"batch": [], "single": [], "read": []}
    try:
        for _ in range(rounds):
            results["batch"].append(
                (peer_batches(peer, events), loop.run_until_complete(our_batches(ours, events)))
            )
            singles = max(events // 5, 50)
            results["single"].append(
                (peer_singles(peer, singles), loop.run_until_complete(our_singles(ours, singles)))
            )
            results["read"].append((peer_read(peer), loop.run_until_complete(our_read(ours))))
    finally:
        loop.run_until_complete(ours.aclose())
        loop.close()
    out = {}
    for key, pairs in results.items():
        out[key] = (
            statistics.median(p for p, _ in pairs),
            statistics.median(o for _, o in pairs),
        )
        print(f"{name:10} {key:7} peer {out[key][0]:>10.0f} ev/s   ours {out[key][1]:>10.0f} ev/s")
    return out


def sqlite_run(
    rounds: int, events: int, directory: str | None = None
) -> dict[str, tuple[float, float]]:
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    with tempfile.TemporaryDirectory(dir=directory) as tmp:

        def make_peer() -> Any:
            recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(Path(tmp) / "peer.db")))
            recorder.create_table()
            return recorder

        return run_backend(
            "sqlite",
            make_peer,
            lambda: SQLiteEventStore(Path(tmp) / "ours.db"),
            rounds,
            events,
        )


def postgres_run(url: str, rounds: int, events: int) -> dict[str, tuple[float, float]]:
    import psycopg
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    suffix = uuid.uuid4().hex[:10]
    peer_table, our_table = f"bench_peer_{suffix}", f"bench_ours_{suffix}"
    parts = urlparse(url)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"),
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
    )

    def make_peer() -> Any:
        recorder = PostgresApplicationRecorder(datastore, events_table_name=peer_table)
        recorder.create_table()
        return recorder

    try:
        return run_backend(
            "postgres",
            make_peer,
            lambda: PostgresEventStore(url, table=our_table, pool_size=2),
            rounds,
            events,
        )
    finally:
        datastore.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {peer_table}")
            conn.execute(f"DROP TABLE IF EXISTS {our_table}")


def goal_line(benchmark: str, pair: tuple[float, float], goal: float | None) -> None:
    peer, ours = pair
    ratio = ours / peer
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "ours": round(ours, 1),
                "peer": round(peer, 1),
                "unit": "events/s",
                "ratio": round(ratio, 3),
                "goal": f">= {goal}x eventsourcing" if goal else "report only",
                "met": ratio >= goal if goal else True,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="folder for the SQLite files (default: temp)")
    args = parser.parse_args()
    results = {"sqlite": sqlite_run(args.rounds, args.events, args.dir)}
    url = os.environ.get("PORTFOLIO_CORE_BENCH_POSTGRES_URL") or os.environ.get(
        "PORTFOLIO_CORE_TEST_POSTGRES_URL"
    )
    if url:
        results["postgres"] = postgres_run(url, args.rounds, args.events)
    else:
        print("PostgreSQL skipped: set PORTFOLIO_CORE_BENCH_POSTGRES_URL")
    goals = {"sqlite": 1.5, "postgres": 1.0}
    for backend, res in results.items():
        goal_line(f"event_store.{backend}.append_batch10", res["batch"], goals[backend])
        goal_line(f"event_store.{backend}.append_single", res["single"], None)
        goal_line(f"event_store.{backend}.read_all", res["read"], None)


if __name__ == "__main__":
    main()
