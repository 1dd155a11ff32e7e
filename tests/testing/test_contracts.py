"""Every suite the kit owns passes on a small, correct adapter of its port."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.testing.contracts.agent import AgentContract
from portfolio_core.testing.contracts.cache_persistence import CachePersistenceContract
from portfolio_core.testing.contracts.generation_engine import GenerationEngineContract
from portfolio_core.testing.contracts.llm import LLMContract
from portfolio_core.testing.contracts.model_backend import ModelBackendContract
from portfolio_core.testing.contracts.pipeline import PipelineContract, PipelineStepContract
from portfolio_core.testing.contracts.router import RouterContract
from portfolio_core.testing.doubles import ScriptedLLM
from tests.testing.adapters import (
    DirPersistence,
    EchoLLM,
    LoopAgent,
    SequencePipeline,
    SimpleRouter,
    ToyBackend,
    ToyEngine,
    UpperStep,
)


class TestEchoLLM(LLMContract):
    @pytest.fixture
    def make_adapter(self) -> type[EchoLLM]:
        return EchoLLM


class TestScriptedLLM(LLMContract):
    """The LLM double itself honours the port."""

    @pytest.fixture
    def make_adapter(self) -> Callable[[], ScriptedLLM]:
        return lambda: ScriptedLLM(default="hello from the script")


class TestSimpleRouter(RouterContract):
    @pytest.fixture
    def make_adapter(self) -> type[SimpleRouter]:
        return SimpleRouter


class TestLoopAgent(AgentContract):
    @pytest.fixture
    def make_adapter(self) -> type[LoopAgent]:
        return LoopAgent


class TestUpperStep(PipelineStepContract):
    @pytest.fixture
    def make_adapter(self) -> type[UpperStep]:
        return UpperStep


class TestSequencePipeline(PipelineContract):
    @pytest.fixture
    def make_adapter(self) -> type[SequencePipeline]:
        return SequencePipeline

    @pytest.fixture
    def pipeline_inputs(self) -> dict[str, Any]:
        return {"text": "hello"}


class TestToyBackend(ModelBackendContract):
    @pytest.fixture
    def make_adapter(self) -> type[ToyBackend]:
        return ToyBackend


class TestToyEngine(GenerationEngineContract):
    @pytest.fixture
    def make_adapter(self) -> type[ToyEngine]:
        return ToyEngine


class TestDirPersistence(CachePersistenceContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Iterator[Callable[[], DirPersistence]]:
        counter = itertools.count()
        return lambda: DirPersistence(tmp_path / f"store-{next(counter)}")
