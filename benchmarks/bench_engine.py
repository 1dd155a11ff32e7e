"""The local GenerationEngine on the numpy reference model, same run, medians of repeats.

(a) decode throughput: 16 concurrent requests through the engine (one batched forward per
    step) against the same 16 requests generated one after another through the same engine;
(b) time to first token of a request sharing a 1,024-token prefix with a cached one, with
    prefix caching on against the same request with prefix caching off.

Single process. BLAS is pinned to one thread (threadpoolctl, and the thread variables)
unless ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` is already set: the matrices are tiny,
and extra BLAS threads only add synchronisation. Wall-clock medians go into the JSON lines;
CPU-time medians are printed beside them, since on a busy machine they show the uncontended
cost.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time

from _threads import describe, pin

pin(1, respect_environment=True)

import numpy as np  # noqa: E402  (after the thread settings, which numpy reads on import)

from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer  # noqa: E402
from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine  # noqa: E402
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend  # noqa: E402

#: the CI smoke mode: tiny counts that prove the benchmark still runs (figures mean nothing)
SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
REQUESTS = 16
PROMPT_TOKENS = 32
NEW_TOKENS = 8 if SMOKE else 96
REPEATS = 2 if SMOKE else 7
PREFIX_TOKENS = 1024
SUFFIX_TOKENS = 16
TTFT_REPEATS = 2 if SMOKE else 7


def drain(engine: LocalGenerationEngine) -> int:
    tokens = 0
    while engine.has_unfinished():
        tokens += sum(c.token_count for c in engine.step())
    return tokens


class Clock:
    """Wall-clock and CPU seconds of a block, with the cyclic garbage collector paused
    (as ``timeit`` does): a collection pass over every object of the process takes ~10 ms
    here and would land at random in one run or the other."""

    def __enter__(self) -> Clock:
        gc.collect()
        gc.disable()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        gc.enable()


Samples = dict[str, list[float]]


def throughput(model: NumpyModelBackend, prompts: list[list[int]]) -> Samples:
    """Tokens/s, batched and sequential, wall and CPU; repeats interleaved."""
    tok = ByteTokenizer()
    out: Samples = {
        "batched": [],
        "sequential": [],
        "batched_cpu": [],
        "sequential_cpu": [],
        "generate": [],
    }

    def engine() -> LocalGenerationEngine:
        return LocalGenerationEngine(model, tok, num_blocks=256, enable_prefix_caching=False)

    for _ in range(REPEATS):
        e = engine()
        with Clock() as clock:
            for p in prompts:
                e.submit("bench", p, max_tokens=NEW_TOKENS)
            n = drain(e)
        out["batched"].append(n / clock.wall)
        out["batched_cpu"].append(n / clock.cpu)
        e = engine()
        with Clock() as clock:
            n = 0
            for p in prompts:
                e.submit("bench", p, max_tokens=NEW_TOKENS)
                n += drain(e)
        out["sequential"].append(n / clock.wall)
        out["sequential_cpu"].append(n / clock.cpu)
        # for reference: the backend's own single-sequence generate (contiguous cache)
        with Clock() as clock:
            n = sum(len(model.generate(p, max_tokens=NEW_TOKENS).tokens) for p in prompts)
        out["generate"].append(n / clock.wall)
    return out


def ttft(model: NumpyModelBackend, rng: np.random.Generator) -> Samples:
    """Milliseconds to the first token, prefix caching on and off, wall and CPU."""
    tok = ByteTokenizer()
    prefix = rng.integers(0, 256, PREFIX_TOKENS).tolist()
    on = LocalGenerationEngine(model, tok, num_blocks=1024)
    off = LocalGenerationEngine(model, tok, num_blocks=1024, enable_prefix_caching=False)
    on.submit("warm", [*prefix, *rng.integers(0, 256, SUFFIX_TOKENS).tolist()], max_tokens=1)
    drain(on)  # the cached request: its full blocks now sit in the prefix cache
    out: Samples = {"on": [], "off": [], "on_cpu": [], "off_cpu": []}
    for _ in range(TTFT_REPEATS):
        prompt = [*prefix, *rng.integers(0, 256, SUFFIX_TOKENS).tolist()]
        for engine, key in ((on, "on"), (off, "off")):
            with Clock() as clock:
                engine.submit("bench", prompt, max_tokens=1)
                drain(engine)
            out[key].append(clock.wall * 1000)
            out[f"{key}_cpu"].append(clock.cpu * 1000)
    assert on.stats().prefix_hit_tokens >= TTFT_REPEATS * PREFIX_TOKENS
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    model = NumpyModelBackend()
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, 256, PROMPT_TOKENS).tolist() for _ in range(REQUESTS)]
    print(f"model: {model!r}")
    print(describe())
    tp = throughput(model, prompts)
    tt = ttft(model, rng)
    batched, sequential = med(tp["batched"]), med(tp["sequential"])
    cached_ms, uncached_ms = med(tt["on"]), med(tt["off"])
    print(f"{'median of ' + str(REPEATS) + ' runs':<48}{'ours':>10}{'baseline':>10}{'ratio':>8}")
    table = [
        ("decode tokens/s, 16 concurrent / one by one", batched, sequential, batched / sequential),
        (
            "  same, per CPU second",
            med(tp["batched_cpu"]),
            med(tp["sequential_cpu"]),
            med(tp["batched_cpu"]) / med(tp["sequential_cpu"]),
        ),
        (
            "  vs backend.generate one by one (no engine)",
            batched,
            med(tp["generate"]),
            batched / med(tp["generate"]),
        ),
        (
            "TTFT ms, 1,024-token prefix cached / not",
            cached_ms,
            uncached_ms,
            uncached_ms / cached_ms,
        ),
        (
            "  same, CPU ms",
            med(tt["on_cpu"]),
            med(tt["off_cpu"]),
            med(tt["off_cpu"]) / med(tt["on_cpu"]),
        ),
    ]
    for label, ours, base, ratio in table:
        print(f"{label:<48}{ours:>10.2f}{base:>10.2f}{ratio:>8.2f}")
    rows = [
        {
            "benchmark": "engine decode throughput: 16 concurrent requests vs one after another",
            "ours": round(batched, 1),
            "peer": round(sequential, 1),
            "unit": "tokens/s",
            "ratio": round(batched / sequential, 2),
            "goal": ">= 6x the sequential throughput",
            "met": batched / sequential >= 6,
        },
        {
            "benchmark": "time to first token, 1,024-token prefix cached vs prefix caching off",
            "ours": round(cached_ms, 3),
            "peer": round(uncached_ms, 3),
            "unit": "ms",
            "ratio": round(uncached_ms / cached_ms, 2),
            "goal": ">= 5x faster",
            "met": uncached_ms / cached_ms >= 5,
        },
    ]
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
