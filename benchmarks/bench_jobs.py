"""Job queues: ours against procrastinate (PostgreSQL) and arq (Redis), in the same run.

Goals (one JSON line each):

- ``jobs_postgres_throughput``: enqueue then process ``--jobs`` (10,000) no-op jobs with 4
  concurrent workers on PostgreSQL; ours (PostgresJobQueue + Worker) against procrastinate.
  Goal: at least 2x the peer's jobs/s.
- ``jobs_redis_throughput``: the same on Redis; ours (RedisJobQueue + Worker) against arq.
  Goal: at least 1.5x.
- ``jobs_postgres_latency_p99``: on an idle PostgreSQL queue, the time from ``enqueue``
  returning to the handler starting, one job at a time (``--samples`` of them); ours and
  procrastinate (both woken by LISTEN/NOTIFY). Goal: our p99 under 20 ms (p50 in the table).
- ``outbox_append_overhead``: median microseconds of a single-event append to a PostgreSQL
  event store (a SQLite file without PostgreSQL) with the outbox configured and the store
  healthy (ours) against a second store of the same kind without it (peer), paired append
  by append in alternating order. Goal: at most 10% added. The outbox's own cost on a
  memory event store is printed beside it.

Like with like: each side enqueues with its bulk API when it has one (ours ``enqueue_many``,
procrastinate ``batch_defer_async``; arq has none, so its enqueues run 100 at a time with
``asyncio.gather``), and the clock runs from the first enqueue until the last job is done.
Each side runs 4 jobs at once (ours ``concurrency=4``, procrastinate ``concurrency=4``, arq
``max_jobs=4``) in one process on one event loop. Per-job log lines are off on both sides
(procrastinate's and arq's loggers are at their defaults, which print nothing per job at
WARNING; ours are filtered to WARNING). Each round uses fresh tables, schemas and keys,
removed at the end. Rounds alternate which side runs first; figures are medians.

Needs ``PORTFOLIO_CORE_BENCH_POSTGRES_URL`` (or ``PORTFOLIO_CORE_TEST_POSTGRES_URL``) and
``PORTFOLIO_CORE_BENCH_REDIS_URL`` (or ``PORTFOLIO_CORE_TEST_REDIS_URL``); goals whose server
is missing are skipped with a note, as are peers that are not installed (``pip install
portfolio-core[bench]``; arq is ``portfolio-core[bench-arq]``, best in an environment of its
own since it requires redis<6). ``PORTFOLIO_CORE_BENCH_SMOKE=1`` runs tiny counts (CI).

    python benchmarks/bench_jobs.py [--jobs 10000] [--rounds 3] [--samples 300] [--appends 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.redis.job_queue import RedisJobQueue
from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.postgres_job_queue import PostgresJobQueue
from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore
from portfolio_core.boundary import outbox_of, wrap
from portfolio_core.ports import JobQueue, NewEvent, NewJob, port_by_key
from portfolio_core.worker import Handlers, Worker

SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"


def _env(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def emit(benchmark: str, ours: float, peer: float, unit: str, ratio: float, goal: str, met: bool):
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "ours": round(ours, 3),
                "peer": round(peer, 3),
                "unit": unit,
                "ratio": round(ratio, 3),
                "goal": goal,
                "met": bool(met),
            }
        ),
        flush=True,
    )


def quiet_logs() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def alternate(
    rounds: int, peer: Callable[[], Awaitable[float]], ours: Callable[[], Awaitable[float]]
) -> tuple[list[float], list[float]]:
    """Run both ``rounds`` times, alternating which goes first; returns (ours, peer)."""
    mine: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        if r % 2 == 0:
            theirs.append(await peer())
            mine.append(await ours())
        else:
            mine.append(await ours())
            theirs.append(await peer())
    return mine, theirs


# -- ours ----------------------------------------------------------------------------------------


async def run_ours(queue: JobQueue, jobs: int) -> float:
    """Seconds to enqueue ``jobs`` no-op jobs and process them with 4 concurrent workers."""
    handlers = Handlers()
    done = asyncio.Event()
    count = 0

    @handlers.task("noop")
    async def noop(payload: Any) -> None:
        nonlocal count
        count += 1
        if count == jobs:
            done.set()

    started = time.perf_counter()
    for i in range(0, jobs, 1000):
        await queue.enqueue_many(
            [NewJob("noop", queue="bench") for _ in range(min(1000, jobs - i))]
        )
    worker = Worker(queue, handlers, queue_name="bench", concurrency=4, idle_wait=0.5)
    task = asyncio.ensure_future(worker.run())
    await done.wait()
    elapsed = time.perf_counter() - started
    worker.stop()
    await task
    counts = await queue.counts("bench")
    if counts.completed != jobs:
        raise RuntimeError(f"ours completed {counts.completed} of {jobs}")
    return elapsed


async def ours_postgres(url: str, jobs: int) -> float:
    table = f"bench_jobs_{uuid.uuid4().hex[:10]}"
    queue = PostgresJobQueue(url, table=table, pool_size=6)
    try:
        await queue.start()
        return await run_ours(queue, jobs)
    finally:
        await queue.aclose()
        await _drop_table(url, table)


async def ours_redis(url: str, jobs: int) -> float:
    namespace = f"bench.jobs.{uuid.uuid4().hex[:10]}"
    queue = RedisJobQueue(url, namespace=namespace)
    try:
        return await run_ours(queue, jobs)
    finally:
        await queue.aclose()
        await _delete_keys(url, f"{namespace}:*")


async def ours_latency(url: str, samples: int) -> list[float]:
    table = f"bench_jobs_{uuid.uuid4().hex[:10]}"
    queue = PostgresJobQueue(url, table=table, poll_interval=5.0)
    producer = PostgresJobQueue(url, table=table)
    handlers = Handlers()
    started: asyncio.Queue[float] = asyncio.Queue()

    @handlers.task("noop")
    async def noop(payload: Any) -> None:
        started.put_nowait(time.perf_counter())

    latencies: list[float] = []
    try:
        await queue.start()
        await producer.start()
        worker = Worker(queue, handlers, queue_name="bench", concurrency=4, idle_wait=5.0)
        task = asyncio.ensure_future(worker.run())
        await asyncio.sleep(0.2)
        for _ in range(samples):
            sent = time.perf_counter()
            await producer.enqueue(NewJob("noop", queue="bench"))
            latencies.append((await asyncio.wait_for(started.get(), 10) - sent) * 1000)
            await asyncio.sleep(0.005)  # let the worker go idle (waiting) again
        worker.stop()
        await task
    finally:
        await queue.aclose()
        await producer.aclose()
        await _drop_table(url, table)
    return latencies


# -- peers ---------------------------------------------------------------------------------------


async def procrastinate_throughput(url: str, jobs: int, schema: str) -> float:
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=url, kwargs={"options": f"-c search_path={schema}"}, min_size=6, max_size=8
        )
    )
    queue_name = f"bench_{uuid.uuid4().hex[:8]}"

    @app.task(name="noop", queue=queue_name)
    async def noop() -> None:
        return None

    async with app.open_async():
        started = time.perf_counter()
        for i in range(0, jobs, 1000):
            await noop.batch_defer_async(*({} for _ in range(min(1000, jobs - i))))
        await app.run_worker_async(
            queues=[queue_name], concurrency=4, wait=False, install_signal_handlers=False
        )
        elapsed = time.perf_counter() - started
        async with app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s "
                "AND status = 'succeeded'",
                (queue_name,),
            )
            (done,) = await cur.fetchone()
    if done != jobs:
        raise RuntimeError(f"procrastinate completed {done} of {jobs}")
    return elapsed


async def procrastinate_latency(url: str, samples: int, schema: str) -> list[float]:
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=url, kwargs={"options": f"-c search_path={schema}"}
        )
    )
    queue_name = f"bench_{uuid.uuid4().hex[:8]}"
    started: asyncio.Queue[float] = asyncio.Queue()

    @app.task(name="noop_latency", queue=queue_name)
    async def noop_latency() -> None:
        started.put_nowait(time.perf_counter())

    latencies: list[float] = []
    async with app.open_async():
        worker = asyncio.ensure_future(
            app.run_worker_async(
                queues=[queue_name],
                concurrency=4,
                wait=True,
                install_signal_handlers=False,
                fetch_job_polling_interval=5.0,
            )
        )
        await asyncio.sleep(0.5)
        for _ in range(samples):
            sent = time.perf_counter()
            await noop_latency.defer_async()
            latencies.append((await asyncio.wait_for(started.get(), 10) - sent) * 1000)
            await asyncio.sleep(0.005)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker
    return latencies


async def arq_throughput(url: str, jobs: int) -> float:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker as ArqWorker
    from arq.worker import func

    settings = RedisSettings.from_dsn(url)
    queue_name = f"bench.arq.{uuid.uuid4().hex[:10]}"
    redis = await create_pool(settings, default_queue_name=queue_name)

    async def noop(ctx: dict[str, Any]) -> None:
        return None

    try:
        started = time.perf_counter()
        for i in range(0, jobs, 100):
            await asyncio.gather(
                *(
                    redis.enqueue_job("noop", _queue_name=queue_name)
                    for _ in range(min(100, jobs - i))
                )
            )
        worker = ArqWorker(
            functions=[func(noop, name="noop")],
            redis_pool=redis,
            queue_name=queue_name,
            max_jobs=4,
            burst=True,
            poll_delay=0.01,
            handle_signals=False,
            keep_result=0,
        )
        await worker.async_run()
        elapsed = time.perf_counter() - started
        if worker.jobs_complete != jobs:
            raise RuntimeError(f"arq completed {worker.jobs_complete} of {jobs}")
        await worker.close()
    finally:
        await redis.aclose()
        await _delete_keys(url, f"{queue_name}*")  # arq removes its job keys as they finish
    return elapsed


# -- outbox ----------------------------------------------------------------------------------------


async def outbox_costs(
    make_store: Callable[[], Any], appends: int, folder: Path
) -> tuple[list[float], list[float]]:
    """Microseconds of each append (with the outbox, without), paired: two stores of the
    same kind are open at once and every step appends to both, in alternating order, so
    both see the same disk and load at the same moment (an fsync that stalls under load
    would otherwise decide the figure)."""
    plain = make_store()
    boxed_store = make_store()
    boxed = wrap(
        boxed_store,
        port=port_by_key("event_store"),
        name="events",
        adapter_type="bench",
        telemetry=None,
        protection={"outbox": {"methods": ["append"], "path": str(folder / "outbox.db")}},
    )
    mine: list[float] = []
    theirs: list[float] = []
    try:
        for store in (plain, boxed_store):
            starter = getattr(store, "start", None)
            if starter is not None:
                await starter()
        prefix = uuid.uuid4().hex[:8]
        for i in range(20):  # warm up connections and caches
            await plain.append(f"w{prefix}{i}", [NewEvent("Warm")])
            await boxed.append(f"w{prefix}{i}", [NewEvent("Warm")])
        for i in range(appends):
            stream = f"s{prefix}{i % 50}"
            order = ((boxed, mine), (plain, theirs)) if i % 2 else ((plain, theirs), (boxed, mine))
            for target, into in order:
                started = time.perf_counter()
                await target.append(stream, [NewEvent("Tick", {"i": i})])
                into.append((time.perf_counter() - started) * 1e6)
    finally:
        box = outbox_of(boxed)
        if box is not None:
            await box.aclose()
        for store in (plain, boxed_store):
            closer = getattr(store, "aclose", None)
            if closer is not None:
                await closer()
    return mine, theirs


# -- cleanup ------------------------------------------------------------------------------------


async def _drop_table(url: str, table: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")


async def _delete_keys(url: str, pattern: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        batch = [key async for key in client.scan_iter(match=pattern, count=1000)]
        for i in range(0, len(batch), 1000):
            await client.delete(*batch[i : i + 1000])
    finally:
        await client.aclose()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _arq_skip_reason(redis_url: str | None, arq_installed: bool) -> str | None:
    """Why the Redis comparison against arq cannot run, or None when it can."""
    if not redis_url:
        return "no Redis URL (PORTFOLIO_CORE_BENCH_REDIS_URL or PORTFOLIO_CORE_TEST_REDIS_URL)"
    if not arq_installed:
        return (
            "arq is not installed; it is the bench-arq extra, not bench, because it requires "
            "redis<6: install portfolio-core[bench-arq] in an environment of its own"
        )
    return None


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# -- main ----------------------------------------------------------------------------------------


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200 if SMOKE else 10_000)
    parser.add_argument("--rounds", type=int, default=1 if SMOKE else 3)
    parser.add_argument("--samples", type=int, default=20 if SMOKE else 300)
    parser.add_argument("--appends", type=int, default=50 if SMOKE else 500)
    args = parser.parse_args()
    quiet_logs()
    pg = _env("PORTFOLIO_CORE_BENCH_POSTGRES_URL", "PORTFOLIO_CORE_TEST_POSTGRES_URL")
    rd = _env("PORTFOLIO_CORE_BENCH_REDIS_URL", "PORTFOLIO_CORE_TEST_REDIS_URL")
    print(f"jobs={args.jobs} rounds={args.rounds} samples={args.samples} appends={args.appends}")
    rows: list[str] = []
    results: list[tuple[Any, ...]] = []

    if pg and _installed("procrastinate"):
        import psycopg

        schema = f"bench_procrastinate_{uuid.uuid4().hex[:8]}"
        async with await psycopg.AsyncConnection.connect(pg, autocommit=True) as conn:
            await conn.execute(f"CREATE SCHEMA {schema}")
        try:
            import procrastinate

            app = procrastinate.App(
                connector=procrastinate.PsycopgConnector(
                    conninfo=pg, kwargs={"options": f"-c search_path={schema}"}
                )
            )
            async with app.open_async():
                await app.schema_manager.apply_schema_async()

            async def peer_pg() -> float:
                return args.jobs / await procrastinate_throughput(pg, args.jobs, schema)

            async def ours_pg() -> float:
                return args.jobs / await ours_postgres(pg, args.jobs)

            mine, theirs = await alternate(args.rounds, peer_pg, ours_pg)
            o, p = statistics.median(mine), statistics.median(theirs)
            rows.append(f"PostgreSQL throughput   ours {o:9.0f} jobs/s   procrastinate {p:9.0f}")
            results.append(
                ("jobs_postgres_throughput", o, p, "jobs/s", o / p, "ratio >= 2", o / p >= 2)
            )

            peer_lat = await procrastinate_latency(pg, args.samples, schema)
            our_lat = await ours_latency(pg, args.samples)
            o50, o99 = _percentile(our_lat, 0.5), _percentile(our_lat, 0.99)
            p50, p99 = _percentile(peer_lat, 0.5), _percentile(peer_lat, 0.99)
            rows.append(
                f"enqueue->start latency  ours p50 {o50:6.2f} ms p99 {o99:6.2f} ms   "
                f"procrastinate p50 {p50:6.2f} ms p99 {p99:6.2f} ms"
            )
            results.append(
                (
                    "jobs_postgres_latency_p99",
                    o99,
                    p99,
                    "ms",
                    p99 / o99,
                    "ours p99 < 20 ms",
                    o99 < 20,
                )
            )
        finally:
            async with await psycopg.AsyncConnection.connect(pg, autocommit=True) as conn:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    else:
        print("skipped PostgreSQL goals: no PostgreSQL URL or procrastinate not installed")

    arq_skipped = _arq_skip_reason(rd, _installed("arq"))
    if arq_skipped is None:

        async def peer_rd() -> float:
            return args.jobs / await arq_throughput(rd, args.jobs)

        async def ours_rd() -> float:
            return args.jobs / await ours_redis(rd, args.jobs)

        mine, theirs = await alternate(args.rounds, peer_rd, ours_rd)
        o, p = statistics.median(mine), statistics.median(theirs)
        rows.append(f"Redis throughput        ours {o:9.0f} jobs/s   arq {p:9.0f}")
        results.append(
            ("jobs_redis_throughput", o, p, "jobs/s", o / p, "ratio >= 1.5", o / p >= 1.5)
        )
    else:
        print(f"skipped the Redis goal: {arq_skipped}")

    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        if pg:
            where = "PostgreSQL"

            def make_store() -> Any:
                return PostgresEventStore(pg, table=f"bench_outbox_{uuid.uuid4().hex[:8]}")

        else:
            where = "SQLite"

            def make_store() -> Any:
                return SQLiteEventStore(base / f"{uuid.uuid4().hex}.db")

        made: list[Any] = []

        def tracked() -> Any:
            store = make_store()
            made.append(store)
            return store

        try:
            mine, theirs = await outbox_costs(tracked, args.appends * args.rounds, base)
        finally:
            if pg:
                for store in made:
                    await _drop_table(pg, store.table)
        o, p = statistics.median(mine), statistics.median(theirs)
        rows.append(
            f"append ({where}), median of {len(mine)} paired appends: with outbox {o:8.1f} us"
            f"   without {p:8.1f} us   ({(o / p - 1) * 100:+.1f}%)"
        )
        memory_mine, memory_theirs = await outbox_costs(MemoryEventStore, args.appends, base)
        rows.append(
            "  the outbox's own cost, on a memory event store: "
            f"{statistics.median(memory_mine) - statistics.median(memory_theirs):.1f} us per append"
        )
        results.append(
            (
                "outbox_append_overhead",
                o,
                p,
                "us/append",
                p / o,
                "ours <= 1.10 x peer",
                o <= 1.10 * p,
            )
        )

    print("machine load (1/5/15 min):", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for row in rows:
        print(row)
    for result in results:
        emit(*result)


if __name__ == "__main__":
    asyncio.run(main())
