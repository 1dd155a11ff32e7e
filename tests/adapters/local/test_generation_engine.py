"""The local continuous-batching engine: scheduling, block pool, prefix caching."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer
from portfolio_core.adapters.local.detokenizer import StreamingDetokenizer
from portfolio_core.adapters.local.generation_engine import (
    EngineStats,
    LocalGenerationEngine,
    LocalGenerationEngineConfig,
)
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
from portfolio_core.adapters.local.simulated_backend import SimulatedModelBackend
from portfolio_core.ports import (
    AgentBlocks,
    CompletedGeneration,
    FinishReason,
    GenerationEngine,
    InvalidInputError,
    NotFoundError,
    PoolExhaustedError,
    Sampling,
    UnavailableError,
)

TOK = ByteTokenizer()
EOS = TOK.eos_token_ids


def check_invariants(engine: LocalGenerationEngine, *, sharing: bool) -> None:
    snap = engine.snapshot()
    refs = snap.ref_counts
    free = snap.free_blocks
    used = [b for b, rc in enumerate(refs) if rc > 0]
    assert len(free) + len(used) == snap.num_blocks
    assert len(set(free)) == len(free)
    assert all(refs[b] == 0 for b in free)
    assert all(rc >= 0 for rc in refs)
    owners: Counter[int] = Counter()
    for table in snap.block_tables.values():
        assert len(set(table)) == len(table), "a block twice in one block table"
        owners.update(table)
    assert owners == {b: rc for b, rc in enumerate(refs) if rc}
    if not sharing:
        assert all(n == 1 for n in owners.values()), "a block owned twice"


def run_all(
    engine: LocalGenerationEngine, *, sharing: bool = True, limit: int = 10_000
) -> dict[str, CompletedGeneration]:
    done: dict[str, CompletedGeneration] = {}
    for _ in range(limit):
        if not engine.has_unfinished():
            break
        for c in engine.step():
            assert c.uid not in done, "a uid finished twice"
            done[c.uid] = c
        check_invariants(engine, sharing=sharing)
    assert not engine.has_unfinished()
    snap = engine.snapshot()
    assert all(rc == 0 for rc in snap.ref_counts)
    assert len(snap.free_blocks) == snap.num_blocks
    return done


def scripted_engine(**kw: object) -> tuple[SimulatedModelBackend, LocalGenerationEngine]:
    backend = SimulatedModelBackend(eos_modulus=kw.pop("eos_modulus", 23))  # type: ignore[arg-type]
    return backend, LocalGenerationEngine(backend, TOK, **kw)


def expected(backend: SimulatedModelBackend, prompt: list[int], max_tokens: int) -> tuple[int, ...]:
    return backend.generate(prompt, max_tokens=max_tokens, stop_ids=EOS).tokens


# -- randomised workloads ------------------------------------------------------------------

PREFIXES = [[], list(range(65, 65 + 13)), list(range(97, 97 + 37)), [7] * 24, [9] * 17]

submit_op = st.tuples(
    st.just("submit"),
    st.sampled_from(range(len(PREFIXES))),
    st.lists(st.integers(0, 255), min_size=1, max_size=12),
    st.integers(1, 40),
)
workloads = st.fixed_dictionaries(
    {
        "block_size": st.sampled_from([2, 4, 4, 16]),
        "num_blocks": st.integers(6, 32),
        "max_num_seqs": st.integers(1, 8),
        "budget": st.integers(4, 64),
        "ops": st.lists(
            st.one_of(
                submit_op,
                st.tuples(st.just("step"), st.integers(1, 4)),
                submit_op,
                st.tuples(st.just("abort"), st.integers(0, 30)),
                st.tuples(st.just("step"), st.integers(1, 4)),
            ),
            min_size=8,
            max_size=40,
        ),
    }
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=workloads, prefix_caching=st.booleans())
def test_random_workloads_keep_invariants_and_outputs(
    workload: dict[str, object], prefix_caching: bool
) -> None:
    backend, engine = scripted_engine(
        block_size=workload["block_size"],
        num_blocks=workload["num_blocks"],
        max_num_seqs=workload["max_num_seqs"],
        max_num_batched_tokens=workload["budget"],
        enable_prefix_caching=prefix_caching,
    )
    wanted: dict[str, tuple[int, ...]] = {}
    uids: list[str] = []
    aborted: set[str] = set()
    done: dict[str, CompletedGeneration] = {}
    for op in workload["ops"]:  # type: ignore[attr-defined]
        if op[0] == "submit":
            prompt = PREFIXES[op[1]] + op[2]
            bs = engine.config.block_size
            needed = -(-max(len(prompt) + op[3] - 1, len(prompt)) // bs)
            if needed > engine.num_blocks:
                with pytest.raises(PoolExhaustedError):
                    engine.submit("a", prompt, max_tokens=op[3])
                continue
            uid = engine.submit("a", prompt, max_tokens=op[3])
            uids.append(uid)
            wanted[uid] = expected(backend, prompt, op[3])
        elif op[0] == "abort":
            if uids:
                uid = uids[op[1] % len(uids)]
                if engine.abort(uid):
                    aborted.add(uid)
        else:
            for _ in range(op[1]):
                for c in engine.step():
                    done[c.uid] = c
                check_invariants(engine, sharing=prefix_caching)
        check_invariants(engine, sharing=prefix_caching)
    done.update(run_all(engine, sharing=prefix_caching))
    stats = engine.stats()
    event(f"preempted: {stats.preemptions > 0}")
    event(f"prefix hits: {stats.prefix_hit_tokens > 0}")
    assert set(done) == set(uids)
    for uid in uids:
        c = done[uid]
        if uid in aborted:
            assert c.finish_reason is FinishReason.ABORT
            continue
        assert c.tokens == wanted[uid]
        assert c.token_count == len(c.tokens)
        assert c.finish_reason is (
            FinishReason.STOP if c.tokens[-1] in EOS else FinishReason.LENGTH
        )


def stress(seed: int) -> EngineStats:
    """A seeded workload on a tight pool with shared prefixes; checks invariants and outputs."""
    rng = np.random.default_rng(seed)
    caching = seed % 2 == 0
    backend, engine = scripted_engine(
        block_size=int(rng.choice([2, 4])),
        num_blocks=int(rng.integers(14, 24)),
        max_num_seqs=int(rng.integers(2, 8)),
        max_num_batched_tokens=int(rng.integers(8, 48)),
        enable_prefix_caching=caching,
    )
    wanted: dict[str, tuple[int, ...]] = {}
    done: dict[str, CompletedGeneration] = {}
    for _ in range(40):
        if rng.random() < 0.5:
            prompt = PREFIXES[int(rng.integers(1, len(PREFIXES)))][: int(rng.integers(8, 40))]
            prompt = prompt + rng.integers(0, 255, int(rng.integers(1, 6))).tolist()
            max_tokens = int(rng.integers(1, 24))
            bs = engine.config.block_size
            if -(-(len(prompt) + max_tokens - 1) // bs) > engine.num_blocks:
                continue
            uid = engine.submit("a", prompt, max_tokens=max_tokens)
            wanted[uid] = expected(backend, prompt, max_tokens)
        for c in engine.step():
            done[c.uid] = c
        check_invariants(engine, sharing=caching)
    done.update(run_all(engine, sharing=caching))
    assert {uid: c.tokens for uid, c in done.items()} == wanted
    return engine.stats()


def test_seeded_stress_with_preemption_and_prefix_hits() -> None:
    stats = [stress(seed) for seed in range(12)]
    assert sum(s.preemptions > 0 for s in stats) >= 8
    assert all(s.prefix_hit_tokens > 0 for s in stats[::2])  # even seeds: caching on


def test_outputs_do_not_depend_on_batch_mix_or_prefix_caching() -> None:
    rng = np.random.default_rng(5)
    base = list(rng.integers(0, 255, 40))
    prompts = [base[: 8 + 3 * i] + list(rng.integers(0, 255, i + 1)) for i in range(12)]
    results = []
    for caching in (True, False):
        for seqs, budget in ((1, 512), (4, 16), (12, 512)):
            backend, engine = scripted_engine(
                block_size=4,
                num_blocks=64,
                max_num_seqs=seqs,
                max_num_batched_tokens=budget,
                enable_prefix_caching=caching,
            )
            uids = [engine.submit("a", p, max_tokens=25) for p in prompts]
            done = run_all(engine, sharing=caching)
            results.append([done[u].tokens for u in uids])
    assert all(r == results[0] for r in results)
    assert results[0] == [expected(backend, p, 25) for p in prompts]


# -- the numpy model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> NumpyModelBackend:
    return NumpyModelBackend(dtype="float64", seed=2)


def test_numpy_engine_matches_single_sequence_generate(model: NumpyModelBackend) -> None:
    prompts = ["Hello, world", "The quick brown fox", "a", "0123456789" * 4]
    engine = LocalGenerationEngine(model, TOK, num_blocks=64, block_size=4)
    uids = [engine.submit("agent", p, max_tokens=10) for p in prompts]
    done = run_all(engine)
    for uid, prompt in zip(uids, prompts, strict=True):
        single = model.generate(TOK.encode(prompt), max_tokens=10, stop_ids=EOS)
        assert done[uid].tokens == single.tokens
        assert done[uid].text == TOK.decode(single.tokens)


def test_numpy_engine_with_preemption_gives_the_same_outputs(model: NumpyModelBackend) -> None:
    prompts = [[i + 1] * (5 + i) for i in range(6)]
    roomy = LocalGenerationEngine(model, TOK, num_blocks=64, block_size=4)
    tight = LocalGenerationEngine(model, TOK, num_blocks=12, block_size=4)
    outs = []
    for engine in (roomy, tight):
        uids = [engine.submit("a", p, max_tokens=20) for p in prompts]
        done = run_all(engine)
        outs.append([done[u].tokens for u in uids])
    assert tight.stats().preemptions > 0
    assert roomy.stats().preemptions == 0
    assert outs[0] == outs[1]


def test_completed_blocks_round_trip_as_cache(model: NumpyModelBackend) -> None:
    engine = LocalGenerationEngine(
        model, TOK, num_blocks=64, block_size=4, enable_prefix_caching=False
    )
    uid = engine.submit("agent-1", "Once upon a time", max_tokens=6)
    first = run_all(engine)[uid]
    assert first.blocks is not None
    assert first.blocks.agent_id == "agent-1"
    assert len(first.blocks.tokens) == len("Once upon a time") + 6 - 1
    assert first.blocks.keys[0].shape == (2, len(first.blocks.tokens), 16)
    follow = [*first.blocks.tokens, first.tokens[-1], *TOK.encode(" there")]
    before = engine.stats().computed_tokens
    uid2 = engine.submit("agent-1", follow, cache=first.blocks, max_tokens=5)
    second = run_all(engine)[uid2]
    assert engine.stats().computed_tokens - before == len(follow) - len(first.blocks.tokens) + 4
    cold = LocalGenerationEngine(model, TOK, num_blocks=64, block_size=4)
    uid3 = cold.submit("x", follow, max_tokens=5)
    assert run_all(cold)[uid3].tokens == second.tokens


def test_prefix_cache_hit_skips_prefill_but_recomputes_last_token() -> None:
    backend, engine = scripted_engine(block_size=4, num_blocks=32, eos_modulus=10_000)
    prompt = list(range(30, 46))  # exactly 4 full blocks
    uid = engine.submit("a", prompt, max_tokens=3)
    run_all(engine)
    assert engine.stats().prefix_hit_tokens == 0
    fed_before = backend.forwarded_tokens
    uid2 = engine.submit("b", prompt, max_tokens=3)
    done = run_all(engine)
    assert engine.stats().prefix_hit_tokens == 12  # 3 blocks: the last block is recomputed
    assert backend.forwarded_tokens - fed_before == 4 + 2
    assert done[uid2].tokens == expected(backend, prompt, 3)
    assert uid != uid2


def test_cache_eviction_in_lru_order() -> None:
    _, engine = scripted_engine(block_size=4, num_blocks=6, eos_modulus=10_000)
    a = list(range(1, 10))
    engine.submit("a", a, max_tokens=1)  # blocks 0, 1, 2 (two full, cached)
    run_all(engine)
    assert engine.stats().cached_blocks == 2
    # released tail first: the free queue is 3 4 5 2 1 0, so block 0 (a's first) goes last
    assert engine.snapshot().free_blocks == (3, 4, 5, 2, 1, 0)
    engine.submit("b", list(range(50, 70)), max_tokens=1)  # takes 3 4 5 2 1: evicts a's 2nd
    run_all(engine)
    assert engine.stats().cached_blocks == 6
    engine.submit("a", a, max_tokens=1)
    run_all(engine)
    assert engine.stats().prefix_hit_tokens == 4  # only a's first block survived


def test_pool_exhausted_only_when_a_request_cannot_fit_alone() -> None:
    _, engine = scripted_engine(block_size=4, num_blocks=4)
    with pytest.raises(PoolExhaustedError) as info:
        engine.submit("a", [1] * 10, max_tokens=8)  # 17 tokens of K/V: 5 blocks
    assert (info.value.needed, info.value.total) == (5, 4)
    uids = [engine.submit("a", [1] * 8, max_tokens=9) for _ in range(3)]  # 16: fits alone
    assert set(run_all(engine)) == set(uids)
    assert engine.stats().preemptions > 0


def test_abort() -> None:
    _, engine = scripted_engine(block_size=4, num_blocks=16, max_num_seqs=1, eos_modulus=10_000)
    running = engine.submit("a", [1, 2, 3], max_tokens=50)
    queued = engine.submit("b", [4, 5, 6], max_tokens=50)
    engine.step()
    assert engine.abort(running)
    assert engine.abort(queued)
    assert not engine.abort(running)
    assert not engine.abort("nope")
    done = {c.uid: c for c in engine.step()}
    assert {c.finish_reason for c in done.values()} == {FinishReason.ABORT}
    assert done[running].token_count == 1
    assert done[queued].token_count == 0
    assert done[running].blocks is None
    assert not engine.has_unfinished()
    check_invariants(engine, sharing=True)
    assert engine.snapshot().free_blocks
    assert all(rc == 0 for rc in engine.snapshot().ref_counts)


def test_stop_and_length() -> None:
    backend = SimulatedModelBackend(eos_at_length=10)
    engine = LocalGenerationEngine(backend, TOK, block_size=4, num_blocks=16)
    stop = engine.submit("a", [1, 2, 3, 4], max_tokens=50)
    length = engine.submit("a", [1, 2, 3, 4], max_tokens=3)
    done = run_all(engine)
    assert done[stop].finish_reason is FinishReason.STOP
    assert done[stop].token_count == 7
    assert done[stop].tokens[-1] == TOK.eos_token_id
    assert TOK.eos_token_id not in TOK.encode(done[stop].text)
    assert done[length].finish_reason is FinishReason.LENGTH
    assert done[length].token_count == 3


def test_max_seq_len_ends_with_length() -> None:
    backend = SimulatedModelBackend(max_seq_len=12, eos_modulus=10_000)
    engine = LocalGenerationEngine(backend, TOK, block_size=4, num_blocks=16)
    uid = engine.submit("a", [1] * 8, max_tokens=100)
    done = run_all(engine)[uid]
    assert (done.finish_reason, done.token_count) == (FinishReason.LENGTH, 4)


def test_temperature_sampling_is_seeded(model: NumpyModelBackend) -> None:
    outs = []
    for _ in range(2):
        engine = LocalGenerationEngine(model, TOK, num_blocks=32, seed=4)
        uid = engine.submit("a", "abc", max_tokens=8, temperature=1.5)
        outs.append(run_all(engine)[uid].tokens)
    assert outs[0] == outs[1]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": [300]}, "prompt"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": [1] * 4096}, "prompt"),
        ({"prompt": "x", "temperature": -1.0}, "temperature"),
    ],
)
def test_invalid_submissions(kwargs: dict[str, object], field: str) -> None:
    _, engine = scripted_engine(num_blocks=512)
    with pytest.raises(InvalidInputError) as info:
        engine.submit("a", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert not engine.has_unfinished()


def test_cache_from_another_model_or_malformed_is_refused(model: NumpyModelBackend) -> None:
    other = NumpyModelBackend(seed=9).generate([1, 2], max_tokens=2).cache
    engine = LocalGenerationEngine(model, TOK, num_blocks=8)
    with pytest.raises(InvalidInputError):
        engine.submit("a", [1, 2, 3], cache=other)
    good = model.generate([1, 2], max_tokens=2).cache
    assert good is not None
    bad = AgentBlocks("a", (*good.tokens, 5), good.keys, good.values, good.spec_hash)
    with pytest.raises(InvalidInputError):
        engine.submit("a", [1, 2, 3], cache=bad)
    with pytest.raises(InvalidInputError):
        model.generate([1, 2, 3], bad)
    assert not engine.has_unfinished()


def test_sizing_from_the_model_spec() -> None:
    model = NumpyModelBackend()
    engine = LocalGenerationEngine.from_config(
        LocalGenerationEngineConfig(kv_cache_bytes=1 << 20), backend=model, tokenizer=TOK
    )
    assert engine.num_blocks == (1 << 20) // model.extract_model_spec().bytes_per_block(16)
    assert isinstance(engine, GenerationEngine)


def test_really_batches_decodes() -> None:
    backend, engine = scripted_engine(block_size=4, num_blocks=64, eos_modulus=10_000)
    for i in range(8):
        engine.submit("a", [i + 1, 2, 3], max_tokens=10)
    run_all(engine)
    assert backend.forward_calls == 10  # one forward per step for all eight requests


def test_streaming_with_output_tokens() -> None:
    backend, engine = scripted_engine(block_size=4, num_blocks=32, eos_modulus=10_000)
    uid = engine.submit("a", [1, 2, 3], max_tokens=6)
    detok = StreamingDetokenizer(TOK)
    seen = 0
    text = ""
    while engine.has_unfinished():
        finished = engine.step()
        tokens = finished[0].tokens if finished else engine.output_tokens(uid)
        text += detok.extend(list(tokens[seen:]))
        seen = len(tokens)
    text += detok.finish()
    assert text == TOK.decode(expected(backend, [1, 2, 3], 6))
    with pytest.raises(NotFoundError):
        engine.output_tokens(uid)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_outputs_same_with_and_without_prefix_caching(dtype: str) -> None:
    model = NumpyModelBackend(dtype=dtype, seed=11)
    shared = TOK.encode("A shared system prompt that spans several blocks. " * 2)
    prompts = [shared + TOK.encode(f"Q{i}") for i in range(5)]
    outs = []
    for caching in (True, False):
        engine = LocalGenerationEngine(
            model, TOK, num_blocks=96, block_size=8, enable_prefix_caching=caching
        )
        first = engine.submit("a", prompts[0], max_tokens=12)
        done = run_all(engine, sharing=caching)
        uids = [first] + [engine.submit("a", p, max_tokens=12) for p in prompts[1:]]
        done.update(run_all(engine, sharing=caching))
        outs.append([done[u].tokens for u in uids])
        assert (engine.stats().prefix_hit_tokens > 0) is caching
    assert outs[0] == outs[1]


def test_close_drops_everything_and_is_idempotent() -> None:
    _, engine = scripted_engine(block_size=4, num_blocks=16)
    engine.submit("a", [1, 2, 3], max_tokens=20)
    engine.step()
    engine.close()
    engine.close()
    assert not engine.has_unfinished()
    assert all(rc == 0 for rc in engine.snapshot().ref_counts)
    with pytest.raises(UnavailableError):
        engine.submit("a", [1], max_tokens=1)
    with pytest.raises(UnavailableError):
        engine.step()


def test_seeded_sampling_does_not_depend_on_the_batch(model: NumpyModelBackend) -> None:
    hot = Sampling(temperature=1.5, top_p=0.95, top_k=50, seed=5)
    alone = LocalGenerationEngine(model, TOK, num_blocks=64, block_size=4)
    uid = alone.submit("a", "Once upon", max_tokens=16, sampling=hot)
    crowded = LocalGenerationEngine(model, TOK, num_blocks=64, block_size=4)
    others = [crowded.submit("b", p, max_tokens=16) for p in ("xyz", "hello there")]
    uid2 = crowded.submit("a", "Once upon", max_tokens=16, sampling=hot)
    others.append(crowded.submit("c", "zzz", max_tokens=16, sampling=Sampling(1.0, seed=9)))
    first, second = run_all(alone)[uid].tokens, run_all(crowded)[uid2].tokens
    assert first == second
    reseeded = LocalGenerationEngine(model, TOK, num_blocks=64, block_size=4)
    uid3 = reseeded.submit("a", "Once upon", max_tokens=16, sampling=Sampling(1.5, seed=6))
    assert run_all(reseeded)[uid3].tokens != first


def test_top_k_one_and_a_tiny_top_p_are_greedy(model: NumpyModelBackend) -> None:
    engine = LocalGenerationEngine(model, TOK, num_blocks=64, block_size=4)
    greedy = engine.submit("a", "Hello", max_tokens=12)
    top1 = engine.submit("a", "Hello", max_tokens=12, sampling=Sampling(5.0, top_k=1))
    nucleus = engine.submit("a", "Hello", max_tokens=12, sampling=Sampling(5.0, top_p=1e-9))
    done = run_all(engine)
    assert done[top1].tokens == done[greedy].tokens == done[nucleus].tokens


def test_top_k_and_top_p_restrict_the_draws() -> None:
    from portfolio_core.adapters.local._numpy_ops import sample

    rng = np.random.default_rng(0)
    ramp = np.arange(10, dtype=np.float64)
    drawn = {sample(ramp, 1.0, rng, top_k=3) for _ in range(300)}
    assert drawn == {7, 8, 9}
    probs = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert {sample(probs, 1.0, rng, top_p=0.6) for _ in range(300)} == {0, 1}
    assert {sample(probs, 1.0, rng, top_p=0.5) for _ in range(300)} == {0}
    assert {sample(probs, 1.0, rng) for _ in range(2000)} == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("sampling", "field"),
    [
        (Sampling(temperature=-1.0), "temperature"),
        (Sampling(1.0, top_p=0.0), "top_p"),
        (Sampling(1.0, top_p=1.5), "top_p"),
        (Sampling(1.0, top_k=-2), "top_k"),
    ],
)
def test_bad_sampling_is_refused(sampling: Sampling, field: str) -> None:
    engine = LocalGenerationEngine(NumpyModelBackend(), TOK, num_blocks=8)
    with pytest.raises(InvalidInputError) as caught:
        engine.submit("a", "hi", sampling=sampling)
    assert caught.value.field == field
    assert not engine.has_unfinished()
