"""Contract suite of the ModelBackend port (sync)."""

from __future__ import annotations

import pytest

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.model_backend import AgentBlocks, Generation, ModelBackend
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.suite import ContractSuite

__all__ = ["ModelBackendContract"]

FINISH = {"stop", "length"}


def _prompt(backend: ModelBackend, length: int = 6) -> list[int]:
    vocab = backend.extract_model_spec().vocab_size
    return [(7 * i + 3) % vocab for i in range(length)]


class ModelBackendContract(ContractSuite[ModelBackend]):
    """The promises of [ModelBackend][portfolio_core.ports.ModelBackend]
    (docs/ports/model_backend.md)."""

    port_key = "model_backend"

    @clause("model_backend.spec.constant", "extract_model_spec is constant and well formed")
    def test_spec(self, adapter: ModelBackend) -> None:
        spec = adapter.extract_model_spec()
        assert spec == adapter.extract_model_spec()
        assert min(spec.n_layers, spec.n_kv_heads, spec.head_dim, spec.vocab_size) >= 1
        assert spec.max_seq_len >= 2
        assert spec.bytes_per_block(16) > 0, f"unknown dtype {spec.dtype!r}"

    @clause("model_backend.generate.greedy", "greedy generation is deterministic")
    def test_greedy_deterministic(self, adapter: ModelBackend) -> None:
        prompt = _prompt(adapter)
        first = adapter.generate(prompt, max_tokens=8)
        second = adapter.generate(prompt, max_tokens=8)
        assert isinstance(first, Generation)
        assert first.tokens == second.tokens

    @clause(
        "model_backend.generate.bounds",
        "at most max_tokens ids, all in the vocabulary; stopping early means finish_reason stop",
    )
    @pytest.mark.parametrize("max_tokens", [1, 5])
    def test_generate_bounds(self, adapter: ModelBackend, max_tokens: int) -> None:
        vocab = adapter.extract_model_spec().vocab_size
        out = adapter.generate(_prompt(adapter), max_tokens=max_tokens)
        assert len(out.tokens) <= max_tokens
        assert all(0 <= t < vocab for t in out.tokens)
        assert out.finish_reason in FINISH
        if len(out.tokens) < max_tokens:
            assert out.finish_reason == "stop"

    @clause("model_backend.generate.stop_ids", "generation stops at a stop id")
    def test_stop_ids(self, adapter: ModelBackend) -> None:
        free = adapter.generate(_prompt(adapter), max_tokens=4)
        if not free.tokens:
            pytest.skip("the model stopped at once")
        stopped = adapter.generate(
            _prompt(adapter), max_tokens=4, stop_ids=frozenset({free.tokens[0]})
        )
        assert len(stopped.tokens) <= 1
        assert stopped.finish_reason == "stop"

    @clause(
        "model_backend.cache.prefix_equivalent",
        "the same tokens come out whether or not the cache of a prefix is passed in",
    )
    def test_cache_prefix_equivalence(self, adapter: ModelBackend) -> None:
        first = adapter.generate(_prompt(adapter, 4), max_tokens=2)
        if first.cache is None:
            pytest.skip("the backend returns no cache")
        prompt = [*first.cache.tokens, *_prompt(adapter, 3)]
        cold = adapter.generate(prompt, max_tokens=4)
        warm = adapter.generate(prompt, first.cache, max_tokens=4)
        assert warm.tokens == cold.tokens

    @clause("model_backend.cache.not_mutated", "a cache passed in is not mutated")
    def test_cache_not_mutated(self, adapter: ModelBackend) -> None:
        first = adapter.generate(_prompt(adapter, 4), max_tokens=2)
        if first.cache is None:
            pytest.skip("the backend returns no cache")
        tokens = first.cache.tokens
        snapshot = [
            bytes(memoryview(a).tobytes()) for a in (*first.cache.keys, *first.cache.values)
        ]
        adapter.generate([*tokens, *_prompt(adapter, 2)], first.cache, max_tokens=3)
        assert first.cache.tokens == tokens
        after = [bytes(memoryview(a).tobytes()) for a in (*first.cache.keys, *first.cache.values)]
        assert after == snapshot, "generate wrote into the cache it was given"

    @clause(
        "model_backend.cache.foreign_rejected", "a cache of another model raises InvalidInputError"
    )
    def test_foreign_cache(self, adapter: ModelBackend) -> None:
        prompt = _prompt(adapter, 3)
        foreign = AgentBlocks("x", tuple(prompt[:2]), (), (), spec_hash="not-this-model")
        with pytest.raises(InvalidInputError):
            adapter.generate(prompt, foreign, max_tokens=2)

    @clause(
        "model_backend.input.invalid",
        "an empty prompt, ids outside the vocabulary or a prompt beyond max_seq_len raise "
        "InvalidInputError",
    )
    def test_invalid_prompts(self, adapter: ModelBackend) -> None:
        spec = adapter.extract_model_spec()
        with pytest.raises(InvalidInputError):
            adapter.generate([], max_tokens=2)
        with pytest.raises(InvalidInputError):
            adapter.generate([spec.vocab_size], max_tokens=2)
        with pytest.raises(InvalidInputError):
            adapter.generate([-1], max_tokens=2)
        with pytest.raises(InvalidInputError):
            adapter.generate([1] * (spec.max_seq_len + 1), max_tokens=2)
