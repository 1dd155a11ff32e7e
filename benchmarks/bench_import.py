"""Import time of ``portfolio_core.ports`` against ``import pydantic``, same run.

Each sample is a fresh interpreter that times only the import statement with
``perf_counter_ns``, so interpreter start-up is excluded for both.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

#: the CI smoke mode: tiny counts that prove the benchmark still runs (figures mean nothing)
SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
RUNS = 2 if SMOKE else 30


def import_us(module: str, statement: str | None = None) -> float:
    """Microseconds the import statement takes in a fresh interpreter."""
    code = (
        "import time; t0 = time.perf_counter_ns()\n"
        f"{statement or 'import ' + module}\n"
        "print((time.perf_counter_ns() - t0) / 1000)"
    )
    # this interpreter, on code written here
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


EVERYTHING = "from portfolio_core.ports import *"


def main() -> None:
    # Interleave the samples so that machine noise hits all three alike.
    bare, full, peer = [], [], []
    for _ in range(RUNS):
        bare.append(import_us("portfolio_core.ports"))
        full.append(import_us("portfolio_core.ports", EVERYTHING))
        peer.append(import_us("pydantic"))
    rows = [
        ("import portfolio_core.ports", bare),
        ("every port and value object", full),
        ("import pydantic", peer),
    ]
    print(f"{'what':<32}{'median ms':>12}{'min ms':>10}")
    for label, samples in rows:
        print(f"{label:<32}{statistics.median(samples) / 1000:>12.2f}{min(samples) / 1000:>10.2f}")
    peer_ms = statistics.median(peer) / 1000
    for label, samples in rows[:2]:
        ours_ms = statistics.median(samples) / 1000
        ratio = peer_ms / ours_ms
        print(
            json.dumps(
                {
                    "benchmark": f"{label} vs import pydantic",
                    "ours": round(ours_ms, 3),
                    "peer": round(peer_ms, 3),
                    "unit": "ms",
                    "ratio": round(ratio, 2),
                    "goal": "under 15 ms and under a third of pydantic's",
                    "met": ours_ms < 15 and ratio > 3,
                }
            )
        )


if __name__ == "__main__":
    main()
