"""The numpy reference transformer and the scripted backend."""

from __future__ import annotations

import numpy as np
import pytest

from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend, NumpyModelBackendConfig
from portfolio_core.adapters.local.simulated_backend import SimulatedModelBackend
from portfolio_core.ports import (
    ForwardSequence,
    InvalidInputError,
    ModelBackend,
    ModelCacheSpec,
    PagedModelBackend,
)

PROMPT = [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 65, 66, 67]


@pytest.fixture(scope="module")
def model64() -> NumpyModelBackend:
    return NumpyModelBackend(dtype="float64", seed=7)


def test_spec_and_block_bytes() -> None:
    model = NumpyModelBackend()
    spec = model.extract_model_spec()
    assert (spec.n_layers, spec.n_kv_heads, spec.head_dim) == (2, 2, 16)
    assert spec.n_kv_heads < model.config.n_heads  # grouped-query attention
    assert (spec.dtype, spec.vocab_size, spec.max_seq_len) == ("float32", 259, 2048)
    assert spec.bytes_per_block(16) == 2 * 16 * 2 * 16 * 4 * 2
    kv = model.allocate_kv_cache(8, 16)
    assert kv.keys.nbytes + kv.values.nbytes == 8 * spec.bytes_per_block(16)
    assert spec.spec_hash != NumpyModelBackend(seed=1).extract_model_spec().spec_hash
    assert spec.spec_hash == NumpyModelBackend().extract_model_spec().spec_hash


def test_weights_are_seeded() -> None:
    a = NumpyModelBackend(seed=3).reference_logits(PROMPT)
    b = NumpyModelBackend.from_config(NumpyModelBackendConfig(seed=3)).reference_logits(PROMPT)
    assert np.array_equal(a, b)
    assert not np.allclose(a, NumpyModelBackend(seed=4).reference_logits(PROMPT))


def test_cached_decoding_equals_full_recomputation(model64: NumpyModelBackend) -> None:
    gen = model64.generate(PROMPT, max_tokens=12)
    seq = [*PROMPT, *gen.tokens]
    ref = model64.reference_logits(seq)
    # every generated token is the greedy choice of fully recomputed logits
    assert list(gen.tokens) == [
        int(np.argmax(ref[i])) for i in range(len(PROMPT) - 1, len(seq) - 1)
    ]
    # and the paged, incremental path gives the same logits within 1e-6 (float64)
    kv = model64.allocate_kv_cache(8, 4)
    table = (5, 2, 7, 0, 1, 3, 6, 4)
    logits = model64.forward(kv, [ForwardSequence(tuple(PROMPT), 0, table)])
    assert np.abs(logits[0] - ref[len(PROMPT) - 1]).max() < 1e-6
    for i in range(len(PROMPT), len(seq)):
        logits = model64.forward(kv, [ForwardSequence((seq[i],), i, table)])
        assert np.abs(logits[0] - ref[i]).max() < 1e-6


def test_a_long_prefill_attends_in_causal_chunks_and_equals_token_by_token(
    model64: NumpyModelBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt longer than one query chunk: each chunk of queries is scored against the
    keys up to its own last position only (the masked half of the triangle is skipped), and
    the logits equal those of feeding the same tokens one at a time."""
    from portfolio_core.adapters.local import numpy_backend

    chunk = numpy_backend._QUERY_CHUNK
    seq = [int(t) for t in np.random.default_rng(5).integers(0, 259, 2 * chunk + 45)]
    seen: list[tuple[int, int]] = []  # (queries, keys) of each attention block
    block = model64._attention_block

    def spy(q: np.ndarray, k: np.ndarray, v: np.ndarray, pos: np.ndarray) -> np.ndarray:
        seen.append((q.shape[1], k.shape[1]))
        return block(q, k, v, pos)

    monkeypatch.setattr(model64, "_attention_block", spy)
    whole = model64.reference_logits(seq)
    per_layer = seen[: len(seen) // model64.config.n_layers]
    assert per_layer == [(chunk, chunk), (chunk, 2 * chunk), (45, 2 * chunk + 45)]
    kv = model64.allocate_kv_cache(32, 16)
    table = tuple(range(32))
    for i, token in enumerate(seq):
        step = model64.forward(kv, [ForwardSequence((token,), i, table)])
        assert np.abs(step[0] - whole[i]).max() < 1e-9, f"position {i}"


def test_paged_and_contiguous_caches_agree(model64: NumpyModelBackend) -> None:
    gen = model64.generate(PROMPT, max_tokens=6)
    assert gen.cache is not None
    kv = model64.allocate_kv_cache(8, 4)
    table = (3, 1, 4, 0, 6, 2)
    seq = [*PROMPT, *gen.tokens[:-1]]
    model64.forward(kv, [ForwardSequence(tuple(seq[:9]), 0, table)])  # chunked prefill
    model64.forward(kv, [ForwardSequence(tuple(seq[9:]), 9, table)])
    keys, values = model64.read_kv(kv, table, len(seq))
    assert gen.cache.tokens == tuple(seq)
    for layer in range(2):
        assert keys[layer].shape == (2, len(seq), 16)
        assert np.abs(keys[layer] - gen.cache.keys[layer]).max() < 1e-9
        assert np.abs(values[layer] - gen.cache.values[layer]).max() < 1e-9


def test_batched_and_single_decoding_agree(model64: NumpyModelBackend) -> None:
    prompts = [PROMPT, PROMPT[:5], [200, 201, 202, 203, 204, 205, 206, 207, 208], [1]]
    singles = [model64.generate(p, max_tokens=8).tokens for p in prompts]
    kv = model64.allocate_kv_cache(32, 4)
    tables = [tuple(range(i * 8, i * 8 + 8)) for i in range(len(prompts))]
    seqs = [list(p) for p in prompts]
    fed = [0] * len(prompts)
    outs: list[list[int]] = [[] for _ in prompts]
    for _ in range(8):
        batch = [
            ForwardSequence(tuple(s[f:]), f, t) for s, f, t in zip(seqs, fed, tables, strict=True)
        ]
        logits = model64.forward(kv, batch)
        for i, row in enumerate(logits):
            fed[i] = len(seqs[i])
            token = int(np.argmax(row))
            outs[i].append(token)
            seqs[i].append(token)
    assert [tuple(o) for o in outs] == singles


def test_prefill_chunks_of_one_length_attend_together_as_each_would_alone(
    model64: NumpyModelBackend,
) -> None:
    # three 5-token chunks (one after an 8-token prefix already in the pool: a longer
    # context, so the others are padded and masked), a 3-token chunk and a decode
    seqs = [PROMPT[:5], PROMPT[8:13], [200, 201, 202, 203, 204], [9, 8, 7], [42]]
    starts = [0, 8, 0, 0, 0]
    tables = [tuple(range(i * 4, i * 4 + 4)) for i in range(len(seqs))]
    alone = []
    for seq, start, table in zip(seqs, starts, tables, strict=True):
        kv = model64.allocate_kv_cache(20, 4)
        if start:
            model64.forward(kv, [ForwardSequence(tuple(PROMPT[:start]), 0, table)])
        alone.append(model64.forward(kv, [ForwardSequence(tuple(seq), start, table)])[0])
    kv = model64.allocate_kv_cache(20, 4)
    model64.forward(kv, [ForwardSequence(tuple(PROMPT[:8]), 0, tables[1])])
    together = model64.forward(
        kv,
        [ForwardSequence(tuple(s), st, t) for s, st, t in zip(seqs, starts, tables, strict=True)],
    )
    np.testing.assert_allclose(together, np.stack(alone), rtol=0, atol=1e-9)
    keys, _ = model64.read_kv(kv, tables[1], 13)  # every chunk's keys landed in its own blocks
    alone_kv = model64.allocate_kv_cache(20, 4)
    model64.forward(alone_kv, [ForwardSequence(tuple(PROMPT[:13]), 0, tables[1])])
    np.testing.assert_allclose(keys[1], model64.read_kv(alone_kv, tables[1], 13)[0][1], atol=1e-9)


def test_generate_reuses_a_prefix_cache(model64: NumpyModelBackend) -> None:
    first = model64.generate(PROMPT, max_tokens=5)
    assert first.cache is not None
    follow = [*first.cache.tokens, first.tokens[-1], 33, 34]
    assert model64.generate(follow, first.cache, max_tokens=5).tokens == (
        model64.generate(follow, max_tokens=5).tokens
    )
    other = [9, *PROMPT]  # diverges at once: cache unused, still correct
    assert model64.generate(other, first.cache, max_tokens=3).tokens == (
        model64.generate(other, max_tokens=3).tokens
    )


def test_generate_stops_on_stop_ids(model64: NumpyModelBackend) -> None:
    free = model64.generate(PROMPT, max_tokens=6)
    stop = model64.generate(PROMPT, max_tokens=6, stop_ids=frozenset({free.tokens[2]}))
    assert stop.finish_reason == "stop"
    assert stop.tokens == free.tokens[: free.tokens.index(free.tokens[2]) + 1]
    assert free.finish_reason == "length"


def test_temperature_sampling_is_valid() -> None:
    gen = NumpyModelBackend(seed=1).generate(PROMPT, max_tokens=10, temperature=1.0)
    assert len(gen.tokens) == 10
    assert all(0 <= t < 259 for t in gen.tokens)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.generate([]),
        lambda m: m.generate([999]),
        lambda m: m.generate([1], max_tokens=0),
        lambda m: m.generate([1] * 2048),
        lambda m: m.forward(m.allocate_kv_cache(1, 4), [ForwardSequence((1,) * 5, 0, (0,))]),
        lambda m: m.forward(object(), []),
        lambda m: m.generate([1], NumpyModelBackend(seed=99).generate([1], max_tokens=2).cache),
    ],
)
def test_invalid_input(call: object) -> None:
    with pytest.raises(InvalidInputError):
        call(NumpyModelBackend())  # type: ignore[operator]


def test_invalid_config() -> None:
    with pytest.raises(InvalidInputError):
        NumpyModelBackend(n_heads=4, n_kv_heads=3)


def test_satisfy_ports() -> None:
    for backend in (NumpyModelBackend(), SimulatedModelBackend()):
        assert isinstance(backend, ModelBackend)
        assert isinstance(backend, PagedModelBackend)
        assert isinstance(backend.extract_model_spec(), ModelCacheSpec)


def test_scripted_is_a_pure_function_of_the_prefix() -> None:
    backend = SimulatedModelBackend(eos_at_length=12)
    gen = backend.generate([1, 2, 3], max_tokens=50)
    assert gen.finish_reason == "length"  # no stop_ids given
    assert 257 not in gen.tokens[:9]
    assert set(gen.tokens[9:]) == {257}  # EOS from length 12 on
    stopped = backend.generate([1, 2, 3], max_tokens=50, stop_ids=frozenset({257}))
    assert stopped.finish_reason == "stop"
    assert len(stopped.tokens) == 12 - 3 + 1
    assert stopped.tokens == tuple(
        backend.next_token([1, 2, 3, *stopped.tokens[:i]]) for i in range(10)
    )


def test_scripted_paged_forward_reads_the_prefix_from_the_pool() -> None:
    backend = SimulatedModelBackend()
    kv = backend.allocate_kv_cache(4, 2)
    logits = backend.forward(kv, [ForwardSequence((5, 6, 7), 0, (2, 0))])
    assert int(np.argmax(logits[0])) == backend.next_token([5, 6, 7])
    # a block table that points at a block holding other positions is caught
    with pytest.raises(InvalidInputError):
        backend.forward(kv, [ForwardSequence((9,), 3, (0, 3))])
