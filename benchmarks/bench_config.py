"""Run-time configuration: flag evaluation, change propagation between processes, reads.

Goals, each measured against its peer in the same run (rounds alternate ours and the peer;
medians over rounds):

* flag evaluation through the OpenFeature client, our provider against the SDK's own
  ``InMemoryProvider`` holding the same flag (a tenant targeting rule, then an attribute
  rule rolled out to 50 % by a stable hash), over the same users: goal ratio >= 1.0;
* the direct typed API (``Flags.boolean``) on the same flag: goal p50 <= 1 microsecond
  (peer: the SDK's in-memory provider through its client, for scale);
* change propagation between two processes (``apply`` in this one -> a watcher in a child
  process sees it), p50 and p99, on PostgreSQL and on Redis: goal p99 < 50 ms on loopback;
  peer: the naive watcher, polling the store every second;
* a read of a key at the current version (``MemoryConfigStore.get``): goal within 1.5x of
  a dict lookup behind a lock in an ``async def`` (the naive in-process store).

PostgreSQL and Redis come from ``PORTFOLIO_CORE_BENCH_POSTGRES_URL`` /
``PORTFOLIO_CORE_BENCH_REDIS_URL`` (or the ``..._TEST_...`` variables); a backend whose URL
is unset is skipped. ``PORTFOLIO_CORE_BENCH_SMOKE=1`` runs tiny rounds.

    python benchmarks/bench_config.py
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.flags import ConfigStoreProvider, FlagContext, Flags

SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
ROUNDS = 1 if SMOKE else 15
USERS = 200 if SMOKE else 5_000
READS = 2_000 if SMOKE else 200_000
PROPAGATIONS = 5 if SMOKE else 200
POLL_SAMPLES = 2 if SMOKE else 12

FLAG = {
    "type": "boolean",
    "variants": {"on": True, "off": False},
    "default_variant": "off",
    "rules": [
        {"when": {"tenant": ["acme"]}, "variant": "on"},
        {"when": {"attributes": {"plan": ["pro"]}}, "variant": "on", "percentage": 50},
    ],
}


def emit(
    benchmark: str, ours: float, peer: float, unit: str, ratio: float, goal: str, met: bool
) -> None:
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "ours": round(ours, 4),
                "peer": round(peer, 4),
                "unit": unit,
                "ratio": round(ratio, 3),
                "goal": goal,
                "met": met,
            }
        )
    )


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- flags ------------------------------------------------------------------------------------


def _peer_flag() -> InMemoryFlag[bool]:
    """The same flag for the SDK's in-memory provider: its context evaluator runs the same
    rules with the same stable hash."""
    salt = b"new-ui:"

    def evaluate(flag: InMemoryFlag[bool], ctx: EvaluationContext) -> FlagResolutionDetails[bool]:
        attrs = ctx.attributes
        if attrs.get("tenant") == "acme":
            return FlagResolutionDetails(True, variant="on", reason=Reason.TARGETING_MATCH)
        key = ctx.targeting_key
        if (
            attrs.get("plan") == "pro"
            and key is not None
            and zlib.crc32(salt + key.encode()) % 10_000 < 5_000
        ):
            return FlagResolutionDetails(True, variant="on", reason=Reason.SPLIT)
        return FlagResolutionDetails(False, variant="off", reason=Reason.DEFAULT)

    return InMemoryFlag("off", {"on": True, "off": False}, context_evaluator=evaluate)


def _contexts() -> list[EvaluationContext]:
    out = []
    for n in range(USERS):
        attrs: dict[str, Any] = {"plan": "pro" if n % 2 else "free"}
        if n % 7 == 0:
            attrs["tenant"] = "acme"
        out.append(EvaluationContext(f"user-{n}", attrs))
    return out


def _time_client(client: Any, contexts: list[EvaluationContext]) -> float:
    """Seconds per evaluation over every context."""
    get = client.get_boolean_value
    start = time.perf_counter()
    for ctx in contexts:
        get("new-ui", False, ctx)
    return (time.perf_counter() - start) / len(contexts)


async def bench_flags() -> None:
    store = MemoryConfigStore()
    flags = Flags(store)
    await flags.define("new-ui", FLAG)
    await flags.start()
    api.set_provider(ConfigStoreProvider(flags), domain="ours")
    api.set_provider(InMemoryProvider({"new-ui": _peer_flag()}), domain="peer")
    ours_client, peer_client = api.get_client("ours"), api.get_client("peer")
    contexts = _contexts()
    for ctx in contexts:  # same answers, or the comparison means nothing
        assert ours_client.get_boolean_value("new-ui", False, ctx) == peer_client.get_boolean_value(
            "new-ui", False, ctx
        )
    ours_rounds, peer_rounds = [], []
    gc.disable()
    try:
        for n in range(ROUNDS):  # alternate which goes first, so neither always runs warm
            if n % 2:
                peer_rounds.append(_time_client(peer_client, contexts))
            ours_rounds.append(_time_client(ours_client, contexts))
            if not n % 2:
                peer_rounds.append(_time_client(peer_client, contexts))
    finally:
        gc.enable()
    ours, peer = statistics.median(ours_rounds), statistics.median(peer_rounds)
    print(f"OpenFeature client: ours {ours * 1e6:.2f} us, InMemoryProvider {peer * 1e6:.2f} us")
    emit(
        "flag evaluation via the OpenFeature client (targeting + 50% rollout)",
        ours * 1e6,
        peer * 1e6,
        "microseconds per evaluation",
        peer / ours,
        "ratio >= 1.0 (our provider adds nothing over the SDK's in-memory one)",
        peer / ours >= 1.0,
    )

    # the providers alone (what each adds inside the same client), same contexts
    ours_provider = ConfigStoreProvider(flags)
    peer_provider = InMemoryProvider({"new-ui": _peer_flag()})
    ours_alone, peer_alone = [], []
    gc.disable()
    try:
        for _ in range(ROUNDS):
            for provider, into in ((ours_provider, ours_alone), (peer_provider, peer_alone)):
                resolve = provider.resolve_boolean_details
                start = time.perf_counter()
                for ctx in contexts:
                    resolve("new-ui", False, ctx)
                into.append((time.perf_counter() - start) / len(contexts))
    finally:
        gc.enable()
    ours_p, peer_p = statistics.median(ours_alone), statistics.median(peer_alone)
    print(f"provider alone: ours {ours_p * 1e9:.0f} ns, InMemoryProvider {peer_p * 1e9:.0f} ns")
    emit(
        "flag resolution by the provider alone (resolve_boolean_details)",
        ours_p * 1e9,
        peer_p * 1e9,
        "nanoseconds per evaluation",
        peer_p / ours_p,
        "informational (the client's own work dominates the goal above)",
        True,
    )

    # the direct API, timed per call in batches (a call is below the timer's resolution)
    ours_ctx = [
        FlagContext(c.targeting_key, c.attributes.get("tenant"), c.attributes)  # type: ignore[arg-type]
        for c in contexts
    ]
    boolean = flags.boolean
    samples: list[float] = []
    gc.disable()
    try:
        for _ in range(ROUNDS):
            for i in range(0, len(ours_ctx), 100):
                batch = ours_ctx[i : i + 100]
                start = time.perf_counter_ns()
                for ctx in batch:
                    boolean("new-ui", False, ctx)
                samples.append((time.perf_counter_ns() - start) / len(batch))
    finally:
        gc.enable()
    p50 = pct(samples, 0.5) / 1000
    print(f"direct API: p50 {p50:.3f} us, p99 {pct(samples, 0.99) / 1000:.3f} us")
    emit(
        "flag evaluation via the direct API (Flags.boolean), p50",
        p50,
        peer * 1e6,
        "microseconds per evaluation",
        peer * 1e6 / p50,
        "p50 <= 1 microsecond",
        p50 <= 1.0,
    )
    await flags.aclose()
    api.clear_providers()


# -- reads ------------------------------------------------------------------------------------


async def _time_reads(get: Callable[[str], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    for _ in range(READS):
        await get("app.timeout")
    return (time.perf_counter() - start) / READS


async def bench_reads() -> None:
    store = MemoryConfigStore()
    await store.apply({"app.timeout": 2.5, **{f"k{n}": n for n in range(100)}})
    values = {"app.timeout": 2.5, **{f"k{n}": n for n in range(100)}}
    lock = threading.Lock()

    async def peer_get(key: str) -> Any:
        with lock:
            return values[key]

    assert await store.get("app.timeout") == await peer_get("app.timeout")
    ours_rounds, peer_rounds = [], []
    gc.disable()
    try:
        for n in range(ROUNDS):
            if n % 2:
                peer_rounds.append(await _time_reads(peer_get))
            ours_rounds.append(await _time_reads(store.get))
            if not n % 2:
                peer_rounds.append(await _time_reads(peer_get))
    finally:
        gc.enable()
    ours, peer = statistics.median(ours_rounds), statistics.median(peer_rounds)
    print(f"read at current version: ours {ours * 1e9:.0f} ns, dict+lock {peer * 1e9:.0f} ns")
    emit(
        "read of a key at the current version (MemoryConfigStore.get)",
        ours * 1e9,
        peer * 1e9,
        "nanoseconds per read",
        peer / ours,
        "within 1.5x of a dict lookup behind a lock (ratio >= 0.667)",
        ours <= 1.5 * peer,
    )
    await store.aclose()


# -- propagation between processes --------------------------------------------------------------


def _store(kind: str, url: str, name: str) -> Any:
    if kind == "postgres":
        from portfolio_core.adapters.sql.config_store import PostgresConfigStore

        return PostgresConfigStore(url, table=name)
    from portfolio_core.adapters.redis.config_store import RedisConfigStore

    return RedisConfigStore(url, namespace=name)


async def child(kind: str, mode: str, url: str, name: str) -> None:
    """The other process: report, for every change, how long after it was applied it was
    seen (the value is the writer's ``time.time_ns()`` just before ``apply``)."""
    store = _store(kind, url, name)
    version = await store.current_version()
    print("ready", flush=True)
    if mode == "watch":
        async for change_set in store.watch("bench.", from_version=version):
            seen = time.time_ns()
            print(seen - change_set.updates()["bench.t"], flush=True)
    else:  # the naive peer: poll every second
        while True:
            await asyncio.sleep(1.0)
            snapshot = await store.read("bench.")
            if snapshot.version != version:
                version = snapshot.version
                print(time.time_ns() - snapshot["bench.t"], flush=True)


def _propagation(kind: str, url: str, mode: str, samples: int) -> list[float]:
    name = f"bench{uuid.uuid4().hex[:10]}"
    proc = subprocess.Popen(  # noqa: S603 - this interpreter running this benchmark's child
        [sys.executable, __file__, "--child", kind, mode, url, name],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    latencies: list[float] = []

    async def drive() -> None:
        store = _store(kind, url, name)
        await store.current_version()
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "ready", line
        for _ in range(samples):
            await store.apply({"bench.t": time.time_ns()})
            line = await asyncio.to_thread(proc.stdout.readline)
            latencies.append(int(line) / 1e6)
            await asyncio.sleep(0.005)
        await store.aclose()

    try:
        asyncio.run(drive())
    finally:
        proc.kill()
        proc.wait()
        asyncio.run(_drop(kind, url, name))
    return latencies


async def _drop(kind: str, url: str, name: str) -> None:
    if kind == "postgres":
        import psycopg

        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
    else:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        async for key in client.scan_iter(match=f"{name}:*"):
            await client.delete(key)
        await client.aclose()


def bench_propagation() -> None:
    for kind in ("postgres", "redis"):
        upper = kind.upper()
        url = os.environ.get(f"PORTFOLIO_CORE_BENCH_{upper}_URL") or os.environ.get(
            f"PORTFOLIO_CORE_TEST_{upper}_URL"
        )
        if not url:
            print(f"{kind}: skipped (set PORTFOLIO_CORE_BENCH_{upper}_URL)")
            continue
        ours = _propagation(kind, url, "watch", PROPAGATIONS)
        peer = _propagation(kind, url, "poll", POLL_SAMPLES)
        p50, p99 = pct(ours, 0.5), pct(ours, 0.99)
        peer_p50, peer_p99 = pct(peer, 0.5), pct(peer, 0.99)
        print(
            f"{kind} propagation: watch p50 {p50:.2f} ms p99 {p99:.2f} ms "
            f"({len(ours)} changes); polling 1 s p50 {peer_p50:.0f} ms p99 {peer_p99:.0f} ms"
        )
        emit(
            f"change propagation between two processes on {kind} (apply -> watcher), p99",
            p99,
            peer_p99,
            "milliseconds",
            peer_p99 / p99,
            "p99 < 50 ms on loopback",
            p99 < 50,
        )
        emit(
            f"change propagation between two processes on {kind} (apply -> watcher), p50",
            p50,
            peer_p50,
            "milliseconds",
            peer_p50 / p50,
            "informational (p50)",
            True,
        )


def main() -> None:
    asyncio.run(bench_flags())
    asyncio.run(bench_reads())
    bench_propagation()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        asyncio.run(child(*sys.argv[2:6]))
    else:
        main()
