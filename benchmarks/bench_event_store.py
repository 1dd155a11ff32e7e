"""EventStore throughput: ours against the `eventsourcing` library's application recorders.

Measured in the same run, on SQLite (a file) and on PostgreSQL (when
PORTFOLIO_CORE_BENCH_POSTGRES_URL or PORTFOLIO_CORE_TEST_POSTGRES_URL is set): 10-event batches
appended to new streams, single-event appends to new streams, reading the global log in
pages of 500, and 10-event batches appended to new streams by W concurrent writers
(``--writers``, default 8).

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

Concurrent writers: the same total number of events as the sequential batch case, split
into 10-event batches over W writers that all share one store; the figure is the time from
start until the last writer is done. Each side uses its own concurrency model, the one its
API is built for: the peer's recorders are synchronous, so its writers are W
``threading.Thread``s sharing one recorder; our API is async, so ours are W ``asyncio`` tasks
sharing one store on one event loop. Either way it is what an application with W requests in
flight does with that library, and either way the appends serialise on the same database
lock (SQLite's write lock; on PostgreSQL the peer's table lock, our advisory lock), so the
figure shows how much of that waiting each side overlaps or amortises. The concurrent case
has its own tables (and SQLite files) on both sides; on PostgreSQL both sides get W pooled
connections. After every run the benchmark counts what landed (the peer's notifications,
our ``read_all`` after the previous run) and raises unless it is every event of every batch,
ten per stream, so a lost append cannot inflate a figure.

The SQLite commit floor: before the SQLite runs, a raw ``sqlite3`` connection in the same
folder (WAL, ``synchronous=FULL``) times ~1000 one-row ``BEGIN IMMEDIATE``/``COMMIT``
transactions (median of 3) and prints the microseconds per durable commit. A sequential
append, whatever its software, cannot be faster than one durable commit, so the peer's
microseconds per sequential batch divided by the floor is the ceiling for the sequential
batch ratio on that disk; it is printed with the table, as context. Concurrent appends can
beat it only by committing several batches at once. After the runs it also times the peer's
own SQL for a batch (its CREATE TABLE and INSERT texts, rows built beforehand, no Python
around them) and prints it beside the time per batch that a 1.5x lead would allow: when the
peer's bare statements take longer than that, no implementation of ours that writes at least
what the peer writes can reach 1.5x on sequential batches.

Rounds alternate peer and ours; each figure is the median of the rounds, and the range over
the rounds is printed too. Tables are uniquely named and dropped at the end. Prints a table,
then one JSON line per goal.

Optional indexes (``--part indexes``): the stores build only the partial correlation index
by default (``indexes:``); this part times the sequential 10-event batches again with every
optional index the backend has (SQLite: type and correlation; PostgreSQL: type,
correlation, time and the GIN data/metadata indexes) against the same peer, in the same
alternating rounds, and reports them as their own lines (``..._all_indexes``, report only),
so the cost of each configuration is visible next to the default's goal line.

Two further parts, also measured in the same run:

- CPython internals (``--part internals``): each shortcut the event store takes through a
  CPython internal (decoding stored JSON with ``json.scanner.make_scanner``, encoding with
  ``_json.make_encoder``, building ``EncodedEvent`` with ``tuple.__new__``) against its
  public-API equivalent on the benchmark's payload, in microseconds per call, with the
  saving as a share of our time per event of the operation it serves (append of 10-event
  batches, or ``read_all``, both on SQLite, measured in this run when the peer part runs).
- Drivers (``--part drivers``): the INSERT of a 10-event batch in one transaction through
  the raw driver (``sqlite3`` / psycopg ``executemany``) against SQLAlchemy Core
  (``conn.execute(table.insert(), rows)``) on the same table definition, with our whole
  ``append`` beside them for scale; JSON encoding is inside the timed loop on every side.

The file event store, also in the same run:

- Throughput (``--part file``): the same four cases with our file store (``fsync="always"``)
  against the peer's SQLite recorder (``synchronous=FULL``): both flush every append to
  stable storage before returning. Report only (the file store has no peer of its own).
- Memory (``--part file_memory``): RSS growth over the bare process of fresh processes that
  append ``--rss-events`` small events (10-event batches, ``fsync="never"``), then reopen the
  log and read every event back in pages of 500, the store still open when sampled; the same
  with a tenth of the events is the reference. Goal: bounded, i.e. the growth at N events
  within 1.25x + 8 MB of that at N/10 (memory that grows with the log fails it by far).

``PORTFOLIO_CORE_BENCH_SMOKE=1`` runs every part with tiny counts (the CI smoke mode: it
proves the benchmark runs; its figures mean nothing).

    python benchmarks/bench_event_store.py [--rounds 5] [--events 2000] [--writers 8]
        [--dir /dev/shm] [--part peer --part internals --part drivers --part file
        --part file_memory] [--rss-events 1000000]

On a slow or busy disk both sides wait for fsync and the ratio tends to 1; ``--dir`` on a
RAM-backed folder measures the software instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from eventsourcing.persistence import StoredEvent

from portfolio_core.adapters._shared.event_store import validation
from portfolio_core.adapters._shared.event_store.validation import EncodedEvent
from portfolio_core.adapters.sql import _event_store_base
from portfolio_core.adapters.sql._event_schema import POSTGRES, SQLITE, ddl, event_table
from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports import NewEvent, StreamState

PAYLOAD = {"amount": 12345, "note": "x" * 48}
SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def shares(batches: int, writers: int) -> list[int]:
    """``batches`` split over ``writers`` as evenly as possible."""
    base, extra = divmod(batches, writers)
    return [base + (1 if i < extra else 0) for i in range(writers)]


def check_landed(where: str, streams: list[Any], batches: int) -> None:
    """Raise unless exactly ``batches`` streams of 10 events each landed."""
    per_stream = Counter(streams)
    if (
        len(streams) != batches * 10
        or len(per_stream) != batches
        or set(per_stream.values()) - {10}
    ):
        raise RuntimeError(
            f"{where}: expected {batches} batches of 10 events, found {len(streams)} events "
            f"in {len(per_stream)} streams"
        )


def sqlite_commit_floor(directory: str, commits: int = 1000, repeats: int = 3) -> float:
    """Microseconds per durable commit of a one-row insert on a raw connection (WAL,
    synchronous=FULL) in ``directory``: median of ``repeats`` runs of ``commits``."""
    path = Path(directory) / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        body = json.dumps(PAYLOAD).encode()
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(commits):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO floor (body) VALUES (?)", (body,))
                conn.execute("COMMIT")
            runs.append((time.perf_counter() - t0) / commits * 1e6)
    finally:
        conn.close()
    return statistics.median(runs)


def sqlite_peer_statements(directory: str, batches: int = 1000, repeats: int = 3) -> float:
    """Microseconds per 10-event batch of the peer's own SQL with no Python around it: its
    CREATE TABLE and INSERT texts, read from an eventsourcing recorder, run on a raw
    connection (WAL, synchronous=FULL) in ``directory`` with rows built beforehand, ten
    INSERTs between BEGIN IMMEDIATE and COMMIT per batch. Median of ``repeats`` runs."""
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(str(Path(directory) / "statements_peer.db"))
    recorder = SQLiteApplicationRecorder(datastore)
    create, insert = recorder.construct_create_table_statements(), recorder.insert_events_statement
    datastore.close()
    conn = sqlite3.connect(Path(directory) / "statements.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in create:
            conn.execute(statement)
        state = json.dumps(PAYLOAD).encode()
        runs = []
        for _ in range(repeats):
            rows = [
                [(uuid.uuid4().hex, v + 1, "Evt", state) for v in range(10)] for _ in range(batches)
            ]
            t0 = time.perf_counter()
            for batch in rows:
                conn.execute("BEGIN IMMEDIATE")
                for row in batch:
                    conn.execute(insert, row)
                conn.execute("COMMIT")
            runs.append((time.perf_counter() - t0) / batches * 1e6)
    finally:
        conn.close()
    return statistics.median(runs)


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


def peer_batches_concurrent(recorder: Any, n: int, writers: int) -> float:
    """``n`` events in 10-event batches from ``writers`` threads sharing ``recorder``."""
    go = threading.Event()
    errors: list[BaseException] = []

    def write(batches: int) -> None:
        go.wait()
        try:
            for _ in range(batches):
                oid = uuid.uuid4()
                recorder.insert_events(
                    [
                        StoredEvent(oid, v + 1, "Evt", json.dumps(PAYLOAD).encode())
                        for v in range(10)
                    ]
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in shares(n // 10, writers)]
    for thread in threads:
        thread.start()
    t0 = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} peer writer(s) failed") from errors[0]
    return rate(n // 10 * 10, elapsed)


def peer_landed(recorder: Any, after: int, batches: int) -> int:
    """Check that the last run's batches all landed after notification ``after``; returns
    the last notification id."""
    page = recorder.select_notifications(after + 1, batches * 10 + 1)
    check_landed("peer", [notification.originator_id for notification in page], batches)
    return page[-1].id if page else after


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


async def our_batches_concurrent(store: Any, n: int, writers: int) -> float:
    """``n`` events in 10-event batches from ``writers`` tasks sharing ``store``."""

    async def write(batches: int) -> None:
        for _ in range(batches):
            stream = str(uuid.uuid4())
            await store.append(
                stream, [NewEvent("Evt", PAYLOAD) for _ in range(10)], StreamState.NO_STREAM
            )

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for batches in shares(n // 10, writers):
            group.create_task(write(batches))
    return rate(n // 10 * 10, time.perf_counter() - t0)


async def our_landed(store: Any, after: int, batches: int) -> int:
    """Check that the last run's batches all landed after position ``after``; returns the
    last position."""
    events = await store.read_all(after + 1)
    check_landed("ours", [event.stream for event in events], batches)
    return events[-1].position if events else after


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
    make_peer: Callable[[str], Any],
    make_ours: Callable[[str], Any],
    rounds: int,
    events: int,
    writers: int,
    describe: Callable[[Any, Any, asyncio.AbstractEventLoop], str] | None = None,
) -> dict[str, tuple[float, float]]:
    """``make_peer``/``make_ours`` take "seq" or "conc": the concurrent case has its own
    tables (or files), and its own pool size."""
    peer = make_peer("seq")
    ours = make_ours("seq")
    peer_c = make_peer("conc")
    ours_c = make_ours("conc")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(ours.start())
    loop.run_until_complete(ours_c.start())
    if describe is not None:
        print(f"{name:10} {describe(peer, ours, loop)}")
    results: dict[str, list[tuple[float, float]]] = {
        "batch": [],
        "single": [],
        "read": [],
        "concurrent": [],
    }
    peer_head = ours_head = 0
    batches = events // 10
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
            peer_rate = peer_batches_concurrent(peer_c, events, writers)
            peer_head = peer_landed(peer_c, peer_head, batches)
            our_rate = loop.run_until_complete(our_batches_concurrent(ours_c, events, writers))
            ours_head = loop.run_until_complete(our_landed(ours_c, ours_head, batches))
            results["concurrent"].append((peer_rate, our_rate))
    finally:
        loop.run_until_complete(ours_c.aclose())
        loop.run_until_complete(ours.aclose())
        loop.close()
    labels = {"concurrent": f"batch x{writers}"}
    out = {}
    for key, pairs in results.items():
        peers, ourss = [p for p, _ in pairs], [o for _, o in pairs]
        out[key] = (statistics.median(peers), statistics.median(ourss))
        print(
            f"{name:10} {labels.get(key, key):7} peer {out[key][0]:>8.0f} ev/s "
            f"({min(peers):.0f}-{max(peers):.0f})"
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
    rounds: int, events: int, writers: int, directory: str | None = None
) -> dict[str, tuple[float, float]]:
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        commits = 20 if SMOKE else 1000
        floor = sqlite_commit_floor(tmp, commits=commits)
        print(
            f"{'sqlite':10} commit floor: {floor:.0f} µs per durable commit "
            f"(raw sqlite3, WAL, synchronous=FULL, one-row insert; median of 3 x {commits})"
        )
        datastores: list[Any] = []

        def make_peer(case: str) -> Any:
            path = str(Path(tmp) / ("peer.db" if case == "seq" else "peer_concurrent.db"))
            # The concurrent peer gets a connection per writer thread.
            sizes = {"pool_size": writers, "max_overflow": 0} if case == "conc" else {}
            datastore = SQLiteDatastore(path, **sizes)
            datastores.append(datastore)
            recorder = SQLiteApplicationRecorder(datastore)
            recorder.create_table()
            return recorder

        try:
            out = run_backend(
                "sqlite",
                make_peer,
                lambda case: SQLiteEventStore(
                    Path(tmp) / ("ours.db" if case == "seq" else "ours_concurrent.db")
                ),
                rounds,
                events,
                writers,
                sqlite_settings,
            )
        finally:
            for datastore in datastores:
                datastore.close()
        peer_batch_us = 10 / out["batch"][0] * 1e6
        print(
            f"{'sqlite':10} sequential batch ceiling: peer {peer_batch_us:.0f} µs per batch / "
            f"floor {floor:.0f} µs = {peer_batch_us / floor:.2f}x at most (context, not a goal)"
        )
        statements = sqlite_peer_statements(tmp, batches=20 if SMOKE else 1000)
        print(
            f"{'sqlite':10} the peer's own SQL alone (no Python): {statements:.0f} µs per batch; "
            f"a 1.5x lead needs at most {peer_batch_us / 1.5:.0f} µs per batch for everything"
        )
        return out


def postgres_run(
    url: str, rounds: int, events: int, writers: int
) -> dict[str, tuple[float, float]]:
    import psycopg
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    suffix = uuid.uuid4().hex[:10]
    peer_tables = {"seq": f"bench_peer_{suffix}", "conc": f"bench_peer_conc_{suffix}"}
    our_tables = {"seq": f"bench_ours_{suffix}", "conc": f"bench_ours_conc_{suffix}"}
    parts = urlparse(url)
    connect = {
        "dbname": parts.path.lstrip("/"),
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "password": parts.password or "",
    }
    # The concurrent case: W pooled connections on both sides.
    datastores = {
        "seq": PostgresDatastore(**connect),
        "conc": PostgresDatastore(**connect, pool_size=writers),
    }
    our_pools = {"seq": 2, "conc": writers}
    # The peer's recorder also creates functions in the database (its insert helper); the
    # run drops the ones it created, and leaves any that were there before.
    functions_sql = (
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = current_schema()"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        functions_before = {row[0] for row in conn.execute(functions_sql)}

    def make_peer(case: str) -> Any:
        recorder = PostgresApplicationRecorder(
            datastores[case], events_table_name=peer_tables[case]
        )
        recorder.create_table()
        return recorder

    try:
        return run_backend(
            "postgres",
            make_peer,
            lambda case: PostgresEventStore(url, table=our_tables[case], pool_size=our_pools[case]),
            rounds,
            events,
            writers,
        )
    finally:
        for datastore in datastores.values():
            datastore.close()
        with psycopg.connect(url, autocommit=True) as conn:
            for table in (*peer_tables.values(), *our_tables.values()):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            for function in {row[0] for row in conn.execute(functions_sql)} - functions_before:
                conn.execute(f"DROP FUNCTION IF EXISTS {function}")


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


# ------------------------------------------------------------------------- the file store


def file_run(
    rounds: int, events: int, writers: int, directory: str | None = None
) -> dict[str, tuple[float, float]]:
    """The file event store (``fsync="always"``) against the peer's SQLite recorder
    (``synchronous=FULL``): both flush every append to stable storage before returning."""
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    from portfolio_core.adapters.file.event_store import FileEventStore

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        datastores: list[Any] = []

        def make_peer(case: str) -> Any:
            path = str(Path(tmp) / ("peer.db" if case == "seq" else "peer_concurrent.db"))
            sizes = {"pool_size": writers, "max_overflow": 0} if case == "conc" else {}
            datastore = SQLiteDatastore(path, **sizes)
            datastores.append(datastore)
            recorder = SQLiteApplicationRecorder(datastore)
            recorder.create_table()
            return recorder

        try:
            return run_backend(
                "file",
                make_peer,
                lambda case: FileEventStore(Path(tmp) / f"ours_{case}.log", fsync="always"),
                rounds,
                events,
                writers,
            )
        finally:
            for datastore in datastores:
                datastore.close()


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


async def _rss_child(mode: str, path: Path, events: int) -> dict[str, float]:
    """One phase of the memory measurement, in a fresh process: ``append`` writes
    ``events`` small events in 10-event batches (``fsync="never"``); ``reopen`` opens the
    log and reads every event in pages of 500. RSS is sampled with the store still open."""
    from portfolio_core.adapters.file.event_store import FileEventStore

    base = rss_bytes()
    store = FileEventStore(path, fsync="never")
    t0 = time.perf_counter()
    await store.start()
    out: dict[str, float] = {"base": base}
    if mode == "append":
        for b in range(events // 10):
            await store.append(f"s{b}", [NewEvent("Evt", PAYLOAD) for _ in range(10)])
        out["seconds"] = time.perf_counter() - t0
        out["after"] = rss_bytes()
    else:
        out["open_seconds"] = time.perf_counter() - t0
        out["opened"] = rss_bytes()
        start, count = 1, 0
        while page := await store.read_all(start, 500):
            count += len(page)
            start = page[-1].position + 1
        del page
        out["seconds"] = time.perf_counter() - t0
        out["after"] = rss_bytes()
        if count != events:
            raise RuntimeError(f"read {count} events back, not {events}")
    await store.aclose()
    return out


def _rss_phase(mode: str, path: Path, events: int) -> dict[str, float]:
    import subprocess
    import sys

    done = subprocess.run(  # noqa: S603 - this interpreter running this benchmark as a child
        [sys.executable, __file__, "--rss-child", mode, str(path), str(events)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def file_memory_run(events: int, directory: str | None) -> tuple[float, float]:
    """RSS growth of a process holding the file store with ``events`` and with a tenth of
    them (each in fresh processes): after appending them, after reopening the log, and after
    reading every event back. Returns the growth after reading, (tenth, all), in MB."""
    mb = 1 << 20
    print(f"{'file':10} RSS over the bare process (MB; store open, fsync=never, 10-event batches)")
    print(f"{'':10} {'events':>10} {'appended':>9} {'reopened':>9} {'read':>9}   timings")
    growth: list[float] = []
    for n in (events // 10, events):
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            path = Path(tmp) / "events.log"
            wrote = _rss_phase("append", path, n)
            read = _rss_phase("reopen", path, n)
            log_mb = path.stat().st_size / mb
        appended = (wrote["after"] - wrote["base"]) / mb
        opened = (read["opened"] - read["base"]) / mb
        after = (read["after"] - read["base"]) / mb
        growth.append(after)
        print(
            f"{'':10} {n:>10,} {appended:>9.1f} {opened:>9.1f} {after:>9.1f}   "
            f"append {n / wrote['seconds']:.0f} ev/s, open {read['open_seconds']:.2f} s, "
            f"read {n / (read['seconds'] - read['open_seconds']):.0f} ev/s, log {log_mb:.0f} MB"
        )
    return growth[0], growth[1]


def file_memory_line(events: int, tenth: float, whole: float) -> None:
    allowed = tenth * 1.25 + 8
    print(
        json.dumps(
            {
                "benchmark": f"event_store.file.rss_growth_reading_{events}_events",
                "ours": round(whole, 1),
                "peer": round(tenth, 1),
                "unit": "MB",
                "ratio": round(tenth / whole, 3) if whole > 0 else 1.0,
                "goal": f"bounded: RSS growth with {events:,} events within 1.25x + 8 MB of "
                f"that with {events // 10:,} (the peer column)",
                "met": whole <= allowed,
            }
        )
    )


# ------------------------------------------------------------------- optional indexes


def _batch_rounds(peer: Any, ours: Any, rounds: int, events: int) -> tuple[float, float]:
    """Median events/s of sequential 10-event batches, peer and ours, alternating."""
    loop = asyncio.new_event_loop()
    pairs: list[tuple[float, float]] = []
    try:
        loop.run_until_complete(ours.start())
        for r in range(rounds):
            if r % 2:
                o = loop.run_until_complete(our_batches(ours, events))
                pairs.append((peer_batches(peer, events), o))
            else:
                p = peer_batches(peer, events)
                pairs.append((p, loop.run_until_complete(our_batches(ours, events))))
    finally:
        loop.run_until_complete(ours.aclose())
        loop.close()
    return (
        statistics.median(p for p, _ in pairs),
        statistics.median(o for _, o in pairs),
    )


def indexes_run(
    rounds: int, events: int, directory: str | None, url: str | None
) -> dict[str, tuple[float, float]]:
    """Sequential batches with every optional index, per backend: (peer, ours) events/s."""
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    out: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        datastore = SQLiteDatastore(str(Path(tmp) / "peer_idx.db"))
        try:
            recorder = SQLiteApplicationRecorder(datastore)
            recorder.create_table()
            ours = SQLiteEventStore(Path(tmp) / "ours_idx.db", indexes=["type", "correlation"])
            out["sqlite"] = _batch_rounds(recorder, ours, rounds, events)
        finally:
            datastore.close()
    if url:
        import psycopg
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        suffix = uuid.uuid4().hex[:10]
        peer_table, our_table = f"bench_peer_idx_{suffix}", f"bench_ours_idx_{suffix}"
        parts = urlparse(url)
        pg = PostgresDatastore(
            dbname=parts.path.lstrip("/"),
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or "",
        )
        functions_sql = (
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = current_schema()"
        )
        with psycopg.connect(url, autocommit=True) as conn:
            functions_before = {row[0] for row in conn.execute(functions_sql)}
        try:
            recorder = PostgresApplicationRecorder(pg, events_table_name=peer_table)
            recorder.create_table()
            every = ["type", "correlation", "time", "data", "metadata"]
            ours = PostgresEventStore(url, table=our_table, pool_size=2, indexes=every)
            out["postgres"] = _batch_rounds(recorder, ours, rounds, events)
        finally:
            pg.close()
            with psycopg.connect(url, autocommit=True) as conn:
                for table in (peer_table, our_table):
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
                for function in {row[0] for row in conn.execute(functions_sql)} - functions_before:
                    conn.execute(f"DROP FUNCTION IF EXISTS {function}")
    for backend, (peer, ours) in out.items():
        print(
            f"{backend:10} batch, all optional indexes: peer {peer:>8.0f} ev/s   "
            f"ours {ours:>8.0f} ev/s"
        )
    return out


# ------------------------------------------------------------------- CPython internals


def _per_call(fn: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``fn`` over ``calls`` calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def internals_run(rounds: int, calls: int) -> dict[str, tuple[float, float]]:
    """(public, internal) microseconds per call of each CPython-internal shortcut and its
    public-API equivalent, alternating within each round; medians over the rounds."""
    text = validation._ENCODER.encode(PAYLOAD)
    assert _event_store_base.decode(text) == json.loads(text) == PAYLOAD
    chunks = validation._encode_chunks
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    assert "".join(chunks(PAYLOAD, 0)) == encoder.encode(PAYLOAD) == text
    fields = (str(uuid.uuid4()), "Evt", text, "{}", None, None)
    new_tuple = tuple.__new__
    assert new_tuple(EncodedEvent, fields) == EncodedEvent(*fields)
    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "decode (make_scanner)": (
            lambda: json.loads(text),
            lambda: _event_store_base.decode(text),
        ),
        "encode (make_encoder)": (
            lambda: encoder.encode(PAYLOAD),
            lambda: "".join(chunks(PAYLOAD, 0)),
        ),
        "EncodedEvent (tuple.__new__)": (
            lambda: EncodedEvent(*fields),
            lambda: new_tuple(EncodedEvent, fields),
        ),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (public, internal) in cases.items():
            samples[name].append((_per_call(public, calls), _per_call(internal, calls)))
    return {
        name: (
            statistics.median(p for p, _ in pairs),
            statistics.median(i for _, i in pairs),
        )
        for name, pairs in samples.items()
    }


def internals_report(
    figures: dict[str, tuple[float, float]], sqlite: dict[str, tuple[float, float]] | None
) -> None:
    """Print each shortcut's figures and its saving as a share of the SQLite time per event
    of the operation it serves (when the peer part ran)."""
    serves = {
        "decode (make_scanner)": "read",
        "encode (make_encoder)": "batch",
        "EncodedEvent (tuple.__new__)": "batch",
    }
    for name, (public, internal) in figures.items():
        share = ""
        if sqlite is not None:
            per_event = 1e6 / sqlite[serves[name]][1]
            share = (
                f"; saves {(public - internal) / per_event * 100:.1f}% of our "
                f"{per_event:.1f} µs per event ({serves[name]}, sqlite)"
            )
        print(
            f"{'internals':10} {name:29} public {public:.3f} µs   internal {internal:.3f} µs"
            f"   public/internal {public / internal:.2f}x{share}"
        )
        print(
            json.dumps(
                {
                    "benchmark": f"event_store.internals.{name.split()[0]}",
                    "internal_us": round(internal, 4),
                    "public_us": round(public, 4),
                    "ratio": round(public / internal, 3),
                    "goal": "report only",
                    "met": True,
                }
            )
        )


# ------------------------------------------------------------------------------- drivers


def _batch_rows(tenant_position: int, n: int = 10) -> list[dict[str, Any]]:
    """A 10-event batch as column values, JSON not yet encoded (both sides encode it)."""
    stream, now = str(uuid.uuid4()), int(time.time() * 1e6)
    return [
        {
            "tenant": "",
            "position": tenant_position + k + 1,
            "stream": stream,
            "version": k + 1,
            "event_id": str(uuid.uuid4()),
            "type": "Evt",
            "data": PAYLOAD,
            "metadata": {},
            "correlation_id": None,
            "causation_id": None,
            "recorded_at": now,
        }
        for k in range(n)
    ]


def _insert_sql(table: str, ph: str, cast: str = "") -> str:
    names = list(_batch_rows(0, 1)[0])
    values = [f"{ph}{cast}" if n in ("data", "metadata") else ph for n in names]
    columns, placeholders = ", ".join(names), ", ".join(values)
    # the table is a name this run generated; every value is a bound parameter
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608


def _raw_values(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    dumps = validation._ENCODER.encode
    return [
        tuple(dumps(v) if k in ("data", "metadata") else v for k, v in row.items()) for row in rows
    ]


def _ours_append(loop: asyncio.AbstractEventLoop, store: Any, batches: int) -> float:
    async def run() -> float:
        t0 = time.perf_counter()
        for _ in range(batches):
            await store.append(
                str(uuid.uuid4()), [NewEvent("Evt", PAYLOAD) for _ in range(10)], StreamState.ANY
            )
        return (time.perf_counter() - t0) / batches * 1e6

    return loop.run_until_complete(run())


def _median_triples(samples: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return (
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
        statistics.median(s[2] for s in samples),
    )


def drivers_sqlite(directory: str, rounds: int, batches: int) -> tuple[float, float, float]:
    """(raw sqlite3, SQLAlchemy Core, our append) microseconds per 10-event batch, each in
    its own file in ``directory`` (WAL, synchronous=FULL), alternating within each round."""
    from sqlalchemy import create_engine, event

    raw_path, sa_path = Path(directory) / "raw.db", Path(directory) / "sqlalchemy.db"
    raw = sqlite3.connect(raw_path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    for statement in ddl(event_table("ev", postgres=False), SQLITE):
        raw.execute(statement)
    insert = _insert_sql("ev", "?")
    engine = create_engine(f"sqlite:///{sa_path}")

    @event.listens_for(engine, "connect")
    def _pragmas(conn: Any, _record: Any) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")

    table = event_table("ev", postgres=False)
    table.metadata.create_all(engine)
    store = SQLiteEventStore(Path(directory) / "ours.db")
    loop = asyncio.new_event_loop()
    loop.run_until_complete(store.start())
    samples: list[tuple[float, float, float]] = []
    raw_head = sa_head = 0
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(batches):
                raw.execute("BEGIN IMMEDIATE")
                raw.executemany(insert, _raw_values(_batch_rows(raw_head)))
                raw.execute("COMMIT")
                raw_head += 10
            raw_us = (time.perf_counter() - t0) / batches * 1e6
            t0 = time.perf_counter()
            for _ in range(batches):
                with engine.begin() as conn:
                    conn.execute(table.insert(), _sa_rows(_batch_rows(sa_head)))
                sa_head += 10
            sa_us = (time.perf_counter() - t0) / batches * 1e6
            samples.append((raw_us, sa_us, _ours_append(loop, store, batches)))
    finally:
        loop.run_until_complete(store.aclose())
        loop.close()
        raw.close()
        engine.dispose()
    return _median_triples(samples)


def _sa_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SQLite's table stores JSON as text: SQLAlchemy gets it encoded, as the raw side."""
    dumps = validation._ENCODER.encode
    return [{**row, "data": dumps(row["data"]), "metadata": dumps(row["metadata"])} for row in rows]


def drivers_postgres(url: str, rounds: int, batches: int) -> tuple[float, float, float]:
    """(raw psycopg, SQLAlchemy Core, our append) microseconds per 10-event batch, each on
    its own table, alternating within each round; tables dropped at the end."""
    import psycopg
    from sqlalchemy import create_engine

    suffix = uuid.uuid4().hex[:10]
    names = {side: f"bench_drv_{side}_{suffix}" for side in ("raw", "sa", "ours")}
    raw = psycopg.connect(url)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    store = PostgresEventStore(url, table=names["ours"], pool_size=2)
    loop = asyncio.new_event_loop()
    samples: list[tuple[float, float, float]] = []
    try:
        with raw.transaction():
            for statement in ddl(event_table(names["raw"], postgres=True), POSTGRES):
                raw.execute(statement)
        table = event_table(names["sa"], postgres=True)
        table.metadata.create_all(engine)
        loop.run_until_complete(store.start())
        insert = _insert_sql(names["raw"], "%s", "::jsonb")
        raw_head = sa_head = 0
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(batches):
                with raw.transaction(), raw.cursor() as cur:
                    cur.executemany(insert, _raw_values(_batch_rows(raw_head)))
                raw_head += 10
            raw_us = (time.perf_counter() - t0) / batches * 1e6
            t0 = time.perf_counter()
            for _ in range(batches):
                with engine.begin() as conn:  # JSONB columns: SQLAlchemy encodes the dicts
                    conn.execute(table.insert(), _batch_rows(sa_head))
                sa_head += 10
            sa_us = (time.perf_counter() - t0) / batches * 1e6
            samples.append((raw_us, sa_us, _ours_append(loop, store, batches)))
    finally:
        loop.run_until_complete(store.aclose())
        loop.close()
        engine.dispose()
        with raw.transaction():
            for name in names.values():
                raw.execute(f"DROP TABLE IF EXISTS {name}")
        raw.close()
    return _median_triples(samples)


def drivers_report(backend: str, figures: tuple[float, float, float]) -> None:
    raw, sa, ours = figures
    print(
        f"{backend:10} insert 10-event batch: raw driver {raw:.0f} µs   SQLAlchemy Core "
        f"{sa:.0f} µs ({sa / raw:.2f}x raw)   our append {ours:.0f} µs"
    )
    print(
        json.dumps(
            {
                "benchmark": f"event_store.{backend}.drivers.insert_batch10",
                "raw_us": round(raw, 1),
                "sqlalchemy_us": round(sa, 1),
                "ours_us": round(ours, 1),
                "ratio": round(sa / raw, 3),
                "goal": "report only",
                "met": True,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument(
        "--writers", type=int, default=8, help="concurrent writers (threads / asyncio tasks)"
    )
    parser.add_argument("--dir", default=None, help="folder for the SQLite files (default: temp)")
    parser.add_argument(
        "--part",
        action="append",
        choices=("peer", "indexes", "internals", "drivers", "file", "file_memory"),
        help="run only these parts (repeatable; default: all)",
    )
    parser.add_argument(
        "--rss-events",
        type=int,
        default=1_000_000,
        help="events in the file store's memory measurement (file_memory)",
    )
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        mode, path, count = args.rss_child
        print(json.dumps(asyncio.run(_rss_child(mode, Path(path), int(count)))))
        return
    if args.writers < 1:
        parser.error("--writers must be at least 1")
    parts = set(args.part or ("peer", "indexes", "internals", "drivers", "file", "file_memory"))
    if SMOKE:
        args.rounds, args.events, args.writers, args.rss_events = 1, 40, 2, 2000
    url = os.environ.get("PORTFOLIO_CORE_BENCH_POSTGRES_URL") or os.environ.get(
        "PORTFOLIO_CORE_TEST_POSTGRES_URL"
    )
    results: dict[str, dict[str, tuple[float, float]]] = {}
    if "peer" in parts:
        print(
            f"batch x{args.writers}: 10-event batches from {args.writers} concurrent writers "
            "(peer: threads sharing one recorder; ours: asyncio tasks sharing one store)"
        )
        results["sqlite"] = sqlite_run(args.rounds, args.events, args.writers, args.dir)
        if url:
            results["postgres"] = postgres_run(url, args.rounds, args.events, args.writers)
        else:
            print("PostgreSQL skipped: set PORTFOLIO_CORE_BENCH_POSTGRES_URL")
    if "file" in parts:
        results["file"] = file_run(args.rounds, args.events, args.writers, args.dir)
    memory: tuple[float, float] | None = None
    if "file_memory" in parts:
        memory = file_memory_run(args.rss_events, args.dir)
    indexed: dict[str, tuple[float, float]] = {}
    if "indexes" in parts:
        indexed = indexes_run(args.rounds, args.events, args.dir, url)
    if "internals" in parts:
        calls = 200 if SMOKE else 100_000
        internals_report(internals_run(args.rounds, calls), results.get("sqlite"))
    if "drivers" in parts:
        batches = 5 if SMOKE else 200
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            drivers_report("sqlite", drivers_sqlite(tmp, args.rounds, batches))
        if url:
            drivers_report("postgres", drivers_postgres(url, args.rounds, batches))
    # issue 18: sequential 10-event batches >= 1.0x on both backends, concurrent writers
    # >= 1.5x on both
    # (the file store has no peer of its own: its lines are report only)
    for backend, res in results.items():
        goal_line(
            f"event_store.{backend}.append_batch10",
            res["batch"],
            None if backend == "file" else 1.0,
        )
        goal_line(f"event_store.{backend}.append_single", res["single"], None)
        goal_line(f"event_store.{backend}.read_all", res["read"], None)
        goal_line(
            f"event_store.{backend}.append_batch10_concurrent",
            res["concurrent"],
            None if backend == "file" else 1.5,
        )
    for backend, pair in indexed.items():
        goal_line(f"event_store.{backend}.append_batch10_all_indexes", pair, None)
    if memory is not None:
        file_memory_line(args.rss_events, *memory)


if __name__ == "__main__":
    main()
