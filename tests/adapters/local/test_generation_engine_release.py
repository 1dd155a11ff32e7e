"""The engine under memory pressure: ``release`` drops free blocks from the prefix cache,
least recently freed first, and hands their pages back; requests never notice."""

from __future__ import annotations

import mmap
import threading

import numpy as np
import pytest

from portfolio_core.adapters.local import _numpy_ops as ops
from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer
from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
from portfolio_core.adapters.local.simulated_backend import SimulatedModelBackend
from portfolio_core.ports import AgentBlocks, ReleaseOrder, Shrinkable
from portfolio_core.testing.shrinkable import check_shrinkable

TOK = ByteTokenizer()
PROMPT = "the same long system prompt, shared by every request " * 2


def backend() -> NumpyModelBackend:
    # 16 positions x 4 KV heads x 32 dims x 4 bytes: two whole pages per block and layer
    return NumpyModelBackend(d_model=128, n_heads=4, n_kv_heads=4, seed=5, max_seq_len=512)


def run(engine: LocalGenerationEngine, prompt: str, max_tokens: int = 6) -> tuple[int, ...]:
    uid = engine.submit("agent", prompt, max_tokens=max_tokens)
    while True:
        for done in engine.step():
            if done.uid == uid:
                return done.tokens


def test_is_shrinkable_and_released_first() -> None:
    engine = LocalGenerationEngine(backend(), TOK, num_blocks=32)
    assert isinstance(engine, Shrinkable)
    assert engine.release_order == ReleaseOrder.PREFIX_CACHE == min(ReleaseOrder)


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="madvise is POSIX-only")
def test_release_hands_back_the_oldest_free_blocks_and_forgets_their_prefixes() -> None:
    model = backend()
    engine = LocalGenerationEngine(model, TOK, num_blocks=32)
    first = run(engine, PROMPT)
    per_block = model.extract_model_spec().bytes_per_block(16)
    held = engine.resident_bytes()
    assert held == per_block * len(engine._pool.dirty) > 0
    cached = engine.stats().cached_blocks
    assert cached > 1
    oldest = next(b for b in engine._pool.free_order() if b in engine._pool.dirty)

    assert engine.release(1) == per_block  # one block is enough
    assert engine.resident_bytes() == held - per_block
    assert oldest not in engine._pool.dirty
    assert not engine._kv.keys[:, oldest * 16 : (oldest + 1) * 16].any(), "pages read zero"

    assert engine.release(10**9) == held - per_block
    assert engine.resident_bytes() == 0
    assert engine.stats().cached_blocks == 0
    assert engine.release(10**9) == 0

    hits_before = engine.stats().prefix_hit_tokens
    assert run(engine, PROMPT) == first, "the dropped prefix is recomputed, to the same tokens"
    assert engine.stats().prefix_hit_tokens == hits_before


def test_release_leaves_running_requests_alone() -> None:
    reference = run(LocalGenerationEngine(backend(), TOK, num_blocks=32), PROMPT, 24)
    engine = LocalGenerationEngine(backend(), TOK, num_blocks=32)
    uid = engine.submit("agent", PROMPT, max_tokens=24)
    engine.step()  # prefilled: the request holds its blocks
    table = engine.snapshot().block_tables[uid]
    engine.release(10**9)
    assert engine.snapshot().block_tables[uid] == table
    tokens: tuple[int, ...] = ()
    while engine.has_unfinished():
        for done in engine.step():
            tokens = done.tokens
    assert tokens == reference


def test_release_from_another_thread_while_stepping() -> None:
    prompts = [PROMPT + str(i) for i in range(6)]
    plain = LocalGenerationEngine(backend(), TOK, num_blocks=24)
    expected = [run(plain, p, 10) for p in prompts * 2]
    engine = LocalGenerationEngine(backend(), TOK, num_blocks=24)
    stop = threading.Event()
    freed: list[int] = []

    def pressure() -> None:
        while not stop.is_set():
            freed.append(engine.release(10**9))

    thread = threading.Thread(target=pressure)
    thread.start()
    try:
        got = [run(engine, p, 10) for p in prompts * 2]
    finally:
        stop.set()
        thread.join()
    assert got == expected
    assert sum(freed) > 0


def test_a_backend_without_the_hook_only_forgets_prefixes() -> None:
    engine = LocalGenerationEngine(SimulatedModelBackend(), TOK, num_blocks=32)
    run(engine, PROMPT)
    assert engine.stats().cached_blocks > 0
    assert engine.release(10**9) == 0
    assert engine.stats().cached_blocks == 0
    assert engine.resident_bytes() == 0


def test_a_closed_engine_holds_and_releases_nothing() -> None:
    engine = LocalGenerationEngine(backend(), TOK, num_blocks=32)
    run(engine, PROMPT)
    assert engine.resident_bytes() > 0
    engine.close()
    assert engine.resident_bytes() == 0  # its storage is gone with it
    assert engine.release(10**9) == 0


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="madvise is POSIX-only")
def test_discarded_pages_leave_the_resident_set() -> None:
    psutil = pytest.importorskip("psutil")
    spec = NumpyModelBackend(
        d_model=256, n_heads=4, n_kv_heads=4, n_layers=2, seed=1
    ).extract_model_spec()
    kv = ops.allocate(spec, 512, 16)  # 2 x 2 x 512 x 16 x 4 x 64 x 4 bytes = 64 MiB
    size = kv.keys.nbytes + kv.values.nbytes
    process = psutil.Process()
    before = process.memory_info().rss
    kv.keys.fill(1.0)
    kv.values.fill(1.0)
    filled = process.memory_info().rss
    assert filled - before > 0.9 * size
    assert ops.discard(kv, range(512)) == size
    after = process.memory_info().rss
    assert filled - after > 0.9 * size
    assert not kv.keys.any()
    assert np.shares_memory(kv.keys, kv.keys)  # still the same, usable array
    kv.keys[0, 0] = 2.0
    assert kv.keys[0, 0, 0, 0] == 2.0


def test_blocks_smaller_than_a_page_free_only_whole_pages() -> None:
    spec = NumpyModelBackend(d_model=64, n_heads=4, n_kv_heads=1).extract_model_spec()
    kv = ops.allocate(spec, 64, 16)  # 16 x 1 x 16 x 4 = 1 KiB per block and layer
    page = mmap.PAGESIZE
    per_block = 16 * 16 * 4
    if not hasattr(mmap, "MADV_DONTNEED") or page % per_block:
        pytest.skip("needs madvise and a page size that is a multiple of 1 KiB")
    assert ops.discard(kv, [1]) == 0, "one block: no whole page"
    run_blocks = range(page // per_block)
    layers = spec.n_layers
    assert ops.discard(kv, run_blocks) == 2 * layers * page


def test_keeps_the_shrinkable_contract() -> None:
    engine = LocalGenerationEngine(backend(), TOK, num_blocks=32)
    counter = iter(range(10**6))

    def fill() -> None:
        for _ in range(3):
            run(engine, PROMPT + str(next(counter)))

    check_shrinkable(engine, fill)


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="madvise is POSIX-only")
def test_a_budget_on_this_process_rss_gets_real_memory_back_from_the_engine() -> None:
    pytest.importorskip("psutil")
    from portfolio_core.services.memory import MemoryBudget, ProcessMemory

    # 16 positions x 8 KV heads x 64 dims x 4 bytes x K and V x 2 layers: 128 KiB a block
    model = NumpyModelBackend(d_model=512, n_heads=8, n_kv_heads=8, seed=3, max_seq_len=512)
    spec = model.extract_model_spec()
    engine = LocalGenerationEngine(model, TOK, num_blocks=256, return_blocks=False)
    rss = ProcessMemory()
    for i in range(14):  # 14 prompts of 256 tokens: 224 of the pool's 256 blocks written
        tokens = TOK.encode(f"{i:>3} " + "x" * 252)
        # a cache of the prompt (as a CacheStore hit would give) is written into the
        # blocks without computing it: only the last token runs through the model
        kv = np.ones((spec.n_kv_heads, len(tokens), spec.head_dim), dtype=np.float32)
        cache = AgentBlocks("a", tuple(tokens), (kv,) * 2, (kv,) * 2, spec.spec_hash)
        uid = engine.submit("a", tokens, cache=cache, max_tokens=1)
        while not any(done.uid == uid for done in engine.step()):
            pass
    held = engine.resident_bytes()
    assert held >= 224 * 128 * 2**10
    before = rss().used
    budget = MemoryBudget(before - 16 * 2**20, rss, [("engine", engine)], target=1.0)
    status = budget.check()
    assert status.pressure
    assert status.released[0].freed >= 16 * 2**20
    assert status.after is not None
    assert before - status.after >= 0.8 * status.released[0].freed, "the pages left the RSS"
    assert not status.still_over
