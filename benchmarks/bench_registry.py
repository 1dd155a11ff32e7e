"""Registry lookup latency (p50/p99) against svcs' ``Container.get`` in the same run.

A single lookup (~0.1 microsecond) is below the resolution of the timer, so lookups are
timed in batches of ``BATCH`` in a loop (with the garbage collector paused) and each
batch's time is divided by ``BATCH``; the percentiles are over batches, and include the
loop's own overhead (so they overstate the lookup slightly). On a busy machine a batch
preempted by the scheduler lands in the tail: p99 measures the machine as much as the
code. Goal: p99 under 1 microsecond. ``PORTFOLIO_CORE_BENCH_SMOKE=1`` times a few batches
(the CI smoke mode: it proves the benchmark runs; its figures mean nothing).

    python benchmarks/bench_registry.py
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from typing import Any

import svcs

from portfolio_core.ports import Cache
from portfolio_core.registry import Registry

SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
BATCH = 200
BATCHES = 20 if SMOKE else 5000


class Impl:
    async def get(self, key: str) -> Any | None:
        return None

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        return None

    async def delete(self, key: str) -> bool:
        return False

    async def clear(self) -> None:
        return None

    async def exists(self, key: str) -> bool:
        return False

    async def get_many(self, keys: Any) -> dict[str, Any]:
        return {}

    async def put_many(self, items: Any, ttl: float | None = None) -> None:
        return None


def per_lookup_ns(lookup: Any) -> list[float]:
    samples = []
    loop = range(BATCH)
    for _ in range(BATCHES):
        start = time.perf_counter_ns()
        for _ in loop:
            lookup()
        samples.append((time.perf_counter_ns() - start) / BATCH)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    registry = Registry()
    adapter = Impl()
    registry.register("sessions", adapter, port=Cache)
    registry.register("other", Impl(), port=Cache)
    assert registry.get(Cache) is adapter

    svcs_registry = svcs.Registry()
    svcs_registry.register_value(Cache, adapter)
    container = svcs.Container(svcs_registry)
    assert container.get(Cache) is adapter

    def ours() -> object:
        return registry.get(Cache)

    def ours_named() -> object:
        return registry.get(Cache, "sessions")

    def peer() -> object:
        return container.get(Cache)

    gc.disable()  # a collection inside a batch measures the collector, not the lookup
    try:
        results = {
            name: per_lookup_ns(fn)
            for name, fn in (("ours", ours), ("ours_named", ours_named), ("peer", peer))
        }
    finally:
        gc.enable()
    print(f"{'ns per lookup':<36}{'p50':>8}{'p99':>8}")
    labels = {
        "ours": "Registry.get(Cache)",
        "ours_named": "Registry.get(Cache, 'sessions')",
        "peer": "svcs Container.get(Cache)",
    }
    for name, samples in results.items():
        print(f"{labels[name]:<36}{pct(samples, 0.5):>8.1f}{pct(samples, 0.99):>8.1f}")
    for name in ("ours", "ours_named"):
        p99 = pct(results[name], 0.99)
        peer_p99 = pct(results["peer"], 0.99)
        print(
            json.dumps(
                {
                    "benchmark": f"registry lookup p99 ({labels[name]}), batches of {BATCH}",
                    "ours": round(p99 / 1000, 4),
                    "peer": round(peer_p99 / 1000, 4),
                    "unit": "microseconds",
                    "ratio": round(peer_p99 / p99, 2),
                    "goal": "p99 < 1 microsecond",
                    "met": p99 < 1000,
                }
            )
        )
    print(
        json.dumps(
            {
                "benchmark": "registry lookup p50 (Registry.get(Cache))",
                "ours": round(pct(results["ours"], 0.5) / 1000, 4),
                "peer": round(pct(results["peer"], 0.5) / 1000, 4),
                "unit": "microseconds",
                "ratio": round(
                    statistics.median(results["peer"]) / statistics.median(results["ours"]), 2
                ),
                "goal": "informational (p50)",
                "met": True,
            }
        )
    )


if __name__ == "__main__":
    main()
