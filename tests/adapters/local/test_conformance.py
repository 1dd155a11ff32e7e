"""The kit's contract suites against every local adapter."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer
from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
from portfolio_core.adapters.local.simulated_backend import SimulatedModelBackend
from portfolio_core.testing.contracts.generation_engine import GenerationEngineContract
from portfolio_core.testing.contracts.model_backend import ModelBackendContract
from portfolio_core.testing.contracts.tokenizer import TokenizerContract

NUMPY = NumpyModelBackend(n_layers=1, max_seq_len=256)


class TestByteTokenizerContract(TokenizerContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], ByteTokenizer]:
        return ByteTokenizer


class TestHuggingFaceTokenizerContract(TokenizerContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], object]:
        pytest.importorskip("tokenizers")
        from portfolio_core.adapters.local.huggingface_tokenizer import HuggingFaceTokenizer
        from tests.adapters.local.bpe import train_bpe

        bpe = train_bpe()
        return lambda: HuggingFaceTokenizer(bpe, eos_tokens=["<|eos|>", "<|im_end|>"])


class TestNumpyModelBackendContract(ModelBackendContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], NumpyModelBackend]:
        return lambda: NumpyModelBackend(n_layers=1, max_seq_len=256)


class TestSimulatedModelBackendContract(ModelBackendContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], SimulatedModelBackend]:
        return lambda: SimulatedModelBackend(eos_modulus=40)


class TestLocalEngineOnNumpyContract(GenerationEngineContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], LocalGenerationEngine]:
        return lambda: LocalGenerationEngine(NUMPY, ByteTokenizer(), num_blocks=64, block_size=4)


class TestLocalEngineOnScriptedContract(GenerationEngineContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], LocalGenerationEngine]:
        # a tight pool: the suite's workloads preempt
        return lambda: LocalGenerationEngine(
            SimulatedModelBackend(eos_modulus=7), ByteTokenizer(), num_blocks=16, block_size=4
        )
