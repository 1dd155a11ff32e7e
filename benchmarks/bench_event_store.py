"""EventStore throughput: ours against the `eventsourcing` library's application recorders.

Measured in the same run, on SQLite (a file) and on PostgreSQL (when
PORTFOLIO_CORE_BENCH_POSTGRES_URL or PORTFOLIO_CORE_TEST_POSTGRES_URL is set): 10-event batches
appended to new streams, single-event appends to new streams, and reading the global log in
pages of 500.

Like with like, exactly:

- Durability: on SQLite both sides use the WAL journal with ``synchronous=FULL`` (our
  default; eventsourcing leaves SQLite's default, which is FULL). The run reads both PRAGMAs
  back from each side's connection and prints them. On PostgreSQL both commit every append
  with the server's ``synchronous_commit`` setting.
- Guarantees: optimistic concurrency (ours: expected_version=NO_STREAM; eventsourcing: the
  unique originator version) and strictly ordered global positions that a tailing reader
  cannot skip (ours: positions assigned under the write lock; eventsourcing: a table lock).
  Ours additionally stores a unique event id per event (idempotent retries), the stream and
  type indexes and the query indexes; the peer's table has only its primary key.
- Work per event: both sides start from the same Python dict and JSON-encode it inside the
  timed loop (ours in ``append``; the peer's loop calls ``json.dumps(...).encode()`` per
  event, as eventsourcing's mapper would, since its recorder stores bytes it is handed). Our
  loop also creates the ``NewEvent`` (with its generated UUIDv7 id) per event. On reads both
  sides end with a dict per event: ours returns decoded ``RecordedEvent``s, and the peer's
  loop ``json.loads`` each notification's state.

Rounds alternate peer and ours; each figure is the median of the rounds, and the range over
the rounds is printed too. Tables are uniquely named and dropped at the end. Prints a table,
then one JSON line per goal.

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


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# ------------------------------------------------------------------------------ peer side


def peer_batches(recorder: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n // 10):
        oid = uuid.uuid4()
        recorder.insert_events(
            [StoredEvent(oid, v + 1, "Evt", json.dumps(PAYLOAD).encode()) for v in range(10)]
        )
    return rate(n // 10 * 10, time.perf_counter() - t0)


def peer_singles(recorder: Any, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "Evt", json.dumps(PAYLOAD).encode())])
    return rate(n, time.perf_counter() - t0)


def peer_read(recorder: Any) -> float:
    t0 = time.perf_counter()
    start, count = 1, 0
    while True:
        page = recorder.select_notifications(start, 500)
        if not page:
            break
        for notification in page:
            json.loads(notification.state)
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
    describe: Callable[[Any, Any, asyncio.AbstractEventLoop], str] | None = None,
) -> dict[str, tuple[float, float]]:
    peer = make_peer()
    ours = make_ours()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(ours.start())
    if describe is not None:
        print(f"{name:10} {describe(peer, ours, loop)}")
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
        peers, ourss = [p for p, _ in pairs], [o for _, o in pairs]
        out[key] = (statistics.median(peers), statistics.median(ourss))
        print(
            f"{name:10} {key:7} peer {out[key][0]:>8.0f} ev/s ({min(peers):.0f}-{max(peers):.0f})"
            f"   ours {out[key][1]:>8.0f} ev/s ({min(ourss):.0f}-{max(ourss):.0f})"
        )
    return out


def sqlite_settings(peer: Any, ours: Any, loop: asyncio.AbstractEventLoop) -> str:
    """Both sides' journal mode and synchronous level, read back from their connections."""
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    shown = []
    for side, run in (
        ("peer", lambda sql: _peer_pragma(peer, sql)),
        ("ours", lambda sql: loop.run_until_complete(ours._fetch(sql, ()))[0][0]),
    ):
        shown.append(
            f"{side}: journal_mode={run('PRAGMA journal_mode')} "
            f"synchronous={names.get(run('PRAGMA synchronous'), '?')}"
        )
    return "; ".join(shown)


def _peer_pragma(recorder: Any, sql: str) -> Any:
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


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
            sqlite_settings,
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
