"""Projections and snapshots: ours against the `eventsourcing` library (9.x), in the same run.

Goals (one JSON line each):

- ``projection_catch_up_postgres``: a projection catching up with ``--events`` (100,000)
  stored events into a SQL read model on PostgreSQL (one row per event into a table, plus
  the projection's checkpoint, committed together). Ours: ``ProjectionRunner`` over a
  ``PostgresEventStore`` and a ``PostgresProjectionStore``; peer: eventsourcing's
  ``ProjectionRunner`` with a ``Projection`` whose view is a ``PostgresTrackingRecorder``
  (the view's insert and its tracking record in one transaction, as its documentation
  shows), subscribed to an ``Application`` on PostgreSQL. Events/s; goal: at least 2x the
  peer. PostgreSQL, because eventsourcing's SQLite recorder does not support the
  subscriptions its projection runner needs (it raises NotImplementedError). Needs
  ``PORTFOLIO_CORE_BENCH_POSTGRES_URL`` or ``PORTFOLIO_CORE_TEST_POSTGRES_URL``; skipped
  with a note otherwise.
- ``aggregate_load_snapshot_vs_replay``: loading one aggregate of ``--aggregate-events``
  (10,000) events through the latest snapshot (taken at the last event), against replaying
  all of them, both ours (``AggregateLoader`` over a ``SQLiteEventStore`` and a
  ``SQLiteSnapshotStore``; the replay uses the same loader with an empty snapshot store).
  Loads/s; goal: at least 20x. The ``peer`` field is our own full replay here: the goal
  compares the two ways of loading, not two libraries.
- ``aggregate_load_snapshot_sqlite``: the same snapshot load, ours against eventsourcing's
  repository with snapshotting (``app.take_snapshot`` then ``app.repository.get``), both on
  SQLite. Loads/s; goal: at least 1.0x (informative: both read a snapshot and nothing else).

Like with like: both sides store the same events (``--events`` over 1,000 streams of equal
length, created then ``Added`` with ``{"n": i}``) in their own tables of one PostgreSQL
database (each side's own schema or table prefix, dropped at the end) and write the same
rows into a read-model table there. The clock runs from starting the runner until the read
model holds every event's row and the checkpoint/tracking record is at the last event; the
row count is checked on both sides.
Each side commits with its own unit of work (the peer: one transaction per event, its
design; ours: one per batch of 500, ours), which is the point being measured; the run prints
the server's time per durable commit beside the figures, as context. Rounds
alternate which side runs first; figures are medians.

    python benchmarks/bench_projections.py [--events 100000] [--aggregate-events 10000]
        [--rounds 3] [--dir /tmp]

``PORTFOLIO_CORE_BENCH_SMOKE=1`` runs tiny counts (CI; the figures mean nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.projection_store import PostgresProjectionStore
from portfolio_core.adapters.sql.snapshot_store import SQLiteSnapshotStore
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.ports import NewEvent, RecordedEvent
from portfolio_core.services.aggregates import Aggregate, AggregateLoader
from portfolio_core.services.projections import ProjectionRunner

SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
STREAMS = 1000


def emit(benchmark: str, ours: float, peer: float, unit: str, goal: float) -> None:
    ratio = ours / peer if peer else float("inf")
    line = {
        "benchmark": benchmark,
        "ours": round(ours, 3),
        "peer": round(peer, 3),
        "unit": unit,
        "ratio": round(ratio, 3),
        "goal": f">= {goal}x",
        "met": ratio >= goal,
    }
    print(json.dumps(line), flush=True)


def postgres_url() -> str | None:
    for name in ("PORTFOLIO_CORE_BENCH_POSTGRES_URL", "PORTFOLIO_CORE_TEST_POSTGRES_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


async def sql(url: str, *statements: str) -> list[Any]:
    import psycopg

    out: list[Any] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for statement in statements:
            cursor = await conn.execute(statement)
            out.append(await cursor.fetchall() if cursor.description else None)
    return out


async def commit_floor(url: str, commits: int = 200) -> float:
    """Milliseconds per one-row autocommit INSERT on this server (context for the figures:
    a side that commits once per event cannot beat it per event)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        table = f"bp_floor_{uuid.uuid4().hex[:8]}"
        await conn.execute(f"CREATE TABLE {table} (a int)")
        started = time.perf_counter()
        for i in range(commits):
            await conn.execute(f"INSERT INTO {table} VALUES (%s)", (i,))  # noqa: S608
        elapsed = time.perf_counter() - started
        await conn.execute(f"DROP TABLE {table}")
    return 1000 * elapsed / commits


async def count_rows(url: str, table: str) -> int:
    (rows,) = await sql(url, f"SELECT count(*) FROM {table}")  # noqa: S608 - our own names
    return int(rows[0][0])


# -- ours: projection catch-up --------------------------------------------------------------------


async def ours_fill(url: str, prefix: str, events: int, streams: int) -> None:
    store = PostgresEventStore(url, table=f"{prefix}_events", pool_size=2)
    await store.start()
    per_stream = events // streams
    for s in range(streams):
        batch = [NewEvent("Created", {"n": 0})]
        batch += [NewEvent("Added", {"n": i}) for i in range(1, per_stream)]
        await store.append(f"cart-{s}", batch)
    await store.aclose()


async def ours_catch_up(url: str, prefix: str, round_: int, total: int) -> float:
    events = PostgresEventStore(url, table=f"{prefix}_events", pool_size=2)
    await events.start()
    store = PostgresProjectionStore(url, table=f"{prefix}_proj{round_}")
    read_model = f"{prefix}_totals{round_}"
    await sql(url, f"CREATE TABLE {read_model} (stream text, n bigint)")
    insert = f"INSERT INTO {read_model} (stream, n) VALUES (%s, %s)"  # noqa: S608

    async def handler(batch: Sequence[RecordedEvent], tx: Any) -> None:
        async with tx.cursor() as cursor:
            await cursor.executemany(insert, [(e.stream, e.data["n"]) for e in batch])

    runner = ProjectionRunner(events, store, "totals", handler, batch_size=500)
    started = time.perf_counter()
    await runner.run_until_caught_up(timeout=3600)
    elapsed = time.perf_counter() - started
    assert runner.checkpoint >= total
    assert await count_rows(url, read_model) == total
    await store.aclose()
    await events.aclose()
    return elapsed


# -- ours: aggregate loads ------------------------------------------------------------------------

CART = Aggregate(
    name="Cart",
    initial=lambda: {"total": 0, "count": 0},
    evolve=lambda s, e: {"total": s["total"] + e.data["n"], "count": s["count"] + 1},
    to_snapshot=lambda s: s,
    from_snapshot=dict,
)


async def ours_loads(path: Path, n_events: int, loads: int) -> tuple[float, float]:
    """Seconds per load on SQLite: (through the snapshot, full replay)."""
    events = SQLiteEventStore(path / "agg-events.db")
    await events.start()
    for i in range(0, n_events, 500):
        batch = [NewEvent("Added", {"n": 1}) for _ in range(min(500, n_events - i))]
        await events.append("cart-big", batch)
    snapshots = SQLiteSnapshotStore(path / "agg-snaps.db")
    empty = SQLiteSnapshotStore(path / "agg-empty.db")

    def never(loaded: Any) -> bool:
        return False

    replay = AggregateLoader(events, empty, CART, policy=never)
    via_snapshot = AggregateLoader(events, snapshots, CART, policy=never)
    full = await replay.load("cart-big")
    assert full.state == {"total": n_events, "count": n_events}
    await via_snapshot.save_snapshot(full)

    async def timed(loader: AggregateLoader[Any], times: int) -> float:
        started = time.perf_counter()
        for _ in range(times):
            loaded = await loader.load("cart-big")
        elapsed = time.perf_counter() - started
        assert loaded.state == full.state
        assert loaded.version == n_events
        return elapsed / times

    result = (await timed(via_snapshot, loads), await timed(replay, max(1, loads // 20)))
    for store in (snapshots, empty):
        await store.aclose()
    await events.aclose()
    return result


# -- the peer -----------------------------------------------------------------------------------


@functools.cache
def peer_classes() -> Any:
    """The peer's classes, made once (its topics name classes by identity)."""
    from eventsourcing.dispatch import singledispatchmethod
    from eventsourcing.domain import Aggregate as PeerAggregate
    from eventsourcing.domain import event
    from eventsourcing.persistence import Tracking
    from eventsourcing.postgres import PostgresTrackingRecorder
    from eventsourcing.projection import Projection
    from psycopg.sql import SQL, Identifier

    class Cart(PeerAggregate):
        def __init__(self) -> None:
            self.total = 0

        @event("Added")
        def add(self, n: int) -> None:
            self.total += n

    class TotalsView(PostgresTrackingRecorder):
        def __init__(self, datastore: Any, **kwargs: Any) -> None:
            super().__init__(datastore, **kwargs)
            schema = Identifier(self.datastore.schema)
            self.sql_create_statements.append(
                SQL("CREATE TABLE IF NOT EXISTS {0}.totals (stream text, n bigint)").format(schema)
            )
            self.insert_total = SQL("INSERT INTO {0}.totals (stream, n) VALUES (%s, %s)").format(
                schema
            )

        def add(self, stream: str, n: int, tracking: Tracking) -> None:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(self.insert_total, (stream, n))
                self._insert_tracking(curs, tracking)

    class Totals(Projection[TotalsView]):
        name = "totals"

        @singledispatchmethod
        def process_event(self, domain_event: Any, tracking: Tracking) -> None:
            self.view.insert_tracking(tracking)

        @process_event.register(Cart.Created)
        def created(self, domain_event: Any, tracking: Tracking) -> None:
            self.view.add(str(domain_event.originator_id), 0, tracking)

        @process_event.register(Cart.Added)
        def added(self, domain_event: Any, tracking: Tracking) -> None:
            self.view.add(str(domain_event.originator_id), domain_event.n, tracking)

    return Cart, TotalsView, Totals


def peer_postgres_env(url: str, schema: str, view_schema: str | None = None) -> dict[str, str]:
    parts = urlparse(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_SCHEMA": schema,
    }
    if view_schema is not None:
        env["TOTALS_POSTGRES_SCHEMA"] = view_schema
    return env


def peer_fill(url: str, schema: str, events: int, streams: int) -> int:
    from eventsourcing.application import Application

    cart_class, _, _ = peer_classes()
    app: Any = Application(env=peer_postgres_env(url, schema))
    per_stream = events // streams
    last = 0
    for s in range(0, streams, 10):
        carts = [cart_class() for _ in range(min(10, streams - s))]
        for cart in carts:
            for i in range(1, per_stream):
                cart.add(i)
        recordings = app.save(*carts)
        last = recordings[-1].notification.id
    app.close()
    return int(last)


def peer_catch_up(url: str, schema: str, view_schema: str, last: int, total: int) -> float:
    from eventsourcing.application import Application
    from eventsourcing.projection import ProjectionRunner as PeerRunner

    _, view_class, projection_class = peer_classes()
    started = time.perf_counter()
    with PeerRunner(
        application_class=Application,
        projection_class=projection_class,
        view_class=view_class,
        env=peer_postgres_env(url, schema, view_schema),
    ) as runner:
        runner.wait(last, timeout=3600)
        elapsed = time.perf_counter() - started
    found = asyncio.run(count_rows(url, f"{view_schema}.totals"))
    assert found == total, (found, total, last)
    return elapsed


def peer_snapshot_load(path: Path, n_events: int, loads: int) -> float:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate as PeerAggregate
    from eventsourcing.domain import event

    class Counter(PeerAggregate):
        def __init__(self) -> None:
            self.total = 0

        @event("Added")
        def add(self, n: int) -> None:
            self.total += n

    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path / "peer-agg.db"),
        "IS_SNAPSHOTTING_ENABLED": "y",
    }
    app: Any = Application(env=env)
    counter = Counter()
    for _ in range(n_events - 1):
        counter.add(1)
    app.save(counter)
    app.take_snapshot(counter.id)
    started = time.perf_counter()
    for _ in range(loads):
        loaded = app.repository.get(counter.id)
    elapsed = time.perf_counter() - started
    assert loaded.total == n_events - 1
    assert loaded.version == n_events
    app.close()
    return elapsed / loads


# -- the run ------------------------------------------------------------------------------------


def catch_up(url: str, events: int, rounds: int) -> tuple[int, list[float], list[float]]:
    streams = min(STREAMS, max(1, events // 2))
    total = (events // streams) * streams
    tag = uuid.uuid4().hex[:8]
    prefix, schema = f"bp_{tag}", f"bp_peer_{tag}"
    view_schemas = [f"bp_view_{tag}_{r}" for r in range(rounds)]
    ours_s: list[float] = []
    peer_s: list[float] = []
    asyncio.run(sql(url, *(f"CREATE SCHEMA {s}" for s in (schema, *view_schemas))))
    try:
        asyncio.run(ours_fill(url, prefix, total, streams))
        last = peer_fill(url, schema, total, streams)
        for r in range(rounds):
            for side in ("peer", "ours") if r % 2 == 0 else ("ours", "peer"):
                if side == "ours":
                    ours_s.append(asyncio.run(ours_catch_up(url, prefix, r, total)))
                else:
                    peer_s.append(peer_catch_up(url, schema, view_schemas[r], last, total))
    finally:
        tables = [f"{prefix}_events"]
        tables += [f"{prefix}_{kind}{r}" for kind in ("proj", "totals") for r in range(rounds)]
        asyncio.run(
            sql(
                url,
                *(f"DROP TABLE IF EXISTS {t}" for t in tables),
                *(f"DROP SCHEMA IF EXISTS {s} CASCADE" for s in (schema, *view_schemas)),
            )
        )
    return total, ours_s, peer_s


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=2000 if SMOKE else 100_000)
    parser.add_argument("--aggregate-events", type=int, default=200 if SMOKE else 10_000)
    parser.add_argument("--loads", type=int, default=20 if SMOKE else 400)
    parser.add_argument("--rounds", type=int, default=1 if SMOKE else 3)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        print("eventsourcing is not installed (pip install 'portfolio-core[bench]'): skipped")
        return

    url = postgres_url()
    if url is None:
        print("no PostgreSQL URL: projection_catch_up_postgres skipped")
    else:
        total, ours_s, peer_s = catch_up(url, args.events, args.rounds)
        ours_rate = total / statistics.median(ours_s)
        peer_rate = total / statistics.median(peer_s)
        floor = asyncio.run(commit_floor(url))
        print(f"projection catch-up of {total} events into a PostgreSQL read model")
        print(f"  (one durable commit on this server: {floor:.2f} ms)")
        print(
            f"  ours {ours_rate:>10,.0f} events/s  (runs {', '.join(f'{s:.2f}s' for s in ours_s)})"
        )
        print(
            f"  peer {peer_rate:>10,.0f} events/s  (runs {', '.join(f'{s:.2f}s' for s in peer_s)})"
        )
        emit("projection_catch_up_postgres", ours_rate, peer_rate, "events/s", 2.0)

    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        snap, replay = asyncio.run(ours_loads(Path(folder), args.aggregate_events, args.loads))
        peer_snap = peer_snapshot_load(Path(folder), args.aggregate_events, args.loads)
    print(f"aggregate of {args.aggregate_events} events, SQLite")
    print(f"  ours via snapshot  {1e6 * snap:>10.0f} us/load")
    print(f"  ours full replay   {1e6 * replay:>10.0f} us/load")
    print(f"  peer via snapshot  {1e6 * peer_snap:>10.0f} us/load")
    emit("aggregate_load_snapshot_vs_replay", 1 / snap, 1 / replay, "loads/s", 20.0)
    emit("aggregate_load_snapshot_sqlite", 1 / snap, 1 / peer_snap, "loads/s", 1.0)


if __name__ == "__main__":
    main()
