"""Agent, model and inference services over the local engine and the memory CacheStore."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

pytest.importorskip("numpy")

from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer
from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
from portfolio_core.adapters.memory.cache_store import MemoryCacheStore
from portfolio_core.ports import (
    AgentBlocks,
    CompletedGeneration,
    ConflictError,
    FinishReason,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
    UnsupportedError,
)
from portfolio_core.services import AgentService, InferenceService, ModelService


def numpy_engine(seed: int = 0) -> tuple[LocalGenerationEngine, str]:
    tokenizer = ByteTokenizer.from_config(ByteTokenizer.config_model())  # type: ignore[attr-defined]
    backend = NumpyModelBackend.from_config(  # type: ignore[attr-defined]
        NumpyModelBackend.config_model(n_layers=1, seed=seed)  # type: ignore[attr-defined]
    )
    engine = LocalGenerationEngine(backend, tokenizer, num_blocks=64, block_size=16)
    return engine, backend.extract_model_spec().spec_hash


@pytest.fixture
def stack() -> tuple[InferenceService, AgentService, ModelService, MemoryCacheStore]:
    store = MemoryCacheStore(max_entries=4, warm=True)
    agents = AgentService(store)
    models = ModelService()
    _, spec = numpy_engine()
    models.register("tiny", lambda: numpy_engine()[0], spec_hash=spec)
    models.load("tiny")
    tokenizer = ByteTokenizer.from_config(ByteTokenizer.config_model())  # type: ignore[attr-defined]
    return InferenceService(models, store, tokenizer, agents=agents), agents, models, store


def test_generate_reuses_the_agents_cache(stack: Any) -> None:
    inference, agents, _, store = stack
    agents.create("ada")
    prompt = "You are a helpful assistant. Answer briefly. " * 3
    first = inference.generate("ada", prompt, max_tokens=4)
    assert first.reused_tokens == 0
    assert first.token_count >= 1
    follow_up = prompt + first.text + " And then?"
    second = inference.generate("ada", follow_up, max_tokens=4)
    assert second.reused_tokens >= 16 * (len(prompt) // 16), "the stored prefix was not reused"
    info = agents.info("ada")
    assert info.generations == 2
    assert info.reused_tokens == second.reused_tokens
    assert store.stats().hits == 1
    again = inference.generate("ada", follow_up, max_tokens=4)
    assert again.text == second.text, "greedy output changed with a cached prefix"


def test_generate_checks_its_input(stack: Any) -> None:
    inference, agents, _, _ = stack
    with pytest.raises(NotFoundError):
        inference.generate("nobody", "hi")
    agents.create("ada")
    with pytest.raises(InvalidInputError):
        inference.generate("ada", "")
    with pytest.raises(InvalidInputError):
        inference.generate("ada", "hi", max_tokens=0)


def test_temperature_reaches_the_local_engine(stack: Any) -> None:
    inference, agents, _, _ = stack
    agents.create("ada")
    result = inference.generate("ada", "hello there", max_tokens=3, temperature=0.8)
    assert 1 <= result.token_count <= 3


def test_agent_management(stack: Any) -> None:
    inference, agents, _, store = stack
    agents.create("b", {"role": "critic"})
    agents.create("a")
    with pytest.raises(ConflictError):
        agents.create("a")
    with pytest.raises(InvalidInputError):
        agents.create("")
    assert agents.list() == ["a", "b"]
    assert agents.info("b").metadata == {"role": "critic"}
    inference.generate("a", "some prompt here", max_tokens=2)
    assert store.tier_of("a") is not None
    assert agents.delete("a") is True
    assert store.tier_of("a") is None, "delete left the agent's cache behind"
    assert agents.delete("a") is False
    with pytest.raises(NotFoundError):
        agents.info("a")


def test_model_management(stack: Any) -> None:
    inference, agents, models, _ = stack
    _, other_spec = numpy_engine(seed=1)
    models.register("other", lambda: numpy_engine(seed=1)[0], spec_hash=other_spec)
    with pytest.raises(ConflictError):
        models.register("other", lambda: numpy_engine(seed=1)[0])
    assert [(m.name, m.loaded) for m in models.list()] == [("other", False), ("tiny", True)]
    agents.create("ada")
    inference.generate("ada", "a prompt long enough to fill a block or two", max_tokens=2)
    models.load("other")
    assert models.current() == "other"
    # the stored cache belongs to the old model: not used, and no error
    result = inference.generate("ada", "a prompt long enough to fill a block or two", max_tokens=2)
    assert result.reused_tokens == 0
    assert result.model == "other"
    with pytest.raises(NotFoundError):
        models.load("missing")
    assert models.unload() is True
    assert models.unload() is False
    assert models.current() is None
    with pytest.raises(UnavailableError):
        inference.generate("ada", "hi")


class CountingEngine:
    """One request finishes per step, in submission order; greedy only."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue: list[str] = []
        self.closed = False
        self.steps = 0
        self._ids = 0

    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: AgentBlocks | None = None,
        max_tokens: int = 256,
    ) -> str:
        assert not self.closed, "submit to a closed engine"
        self._ids += 1
        uid = f"gen-{self._ids}"
        self.queue.append(uid)
        return uid

    def step(self) -> list[CompletedGeneration]:
        assert not self.closed, "step of a closed engine"
        self.steps += 1
        if not self.queue:
            return []
        uid = self.queue.pop(0)
        return [CompletedGeneration(uid, self.name, None, FinishReason.STOP, 1)]

    def abort(self, uid: str) -> bool:
        return False

    def has_unfinished(self) -> bool:
        return bool(self.queue)

    def close(self) -> None:
        self.closed = True


def test_hot_swap_drains_in_flight_requests() -> None:
    old, new = CountingEngine("old"), CountingEngine("new")
    models = ModelService()
    models.register("old", lambda: old)
    models.register("new", lambda: new)
    models.load("old")
    tickets = [models.submit("a", [1, 2], None, 4, 0.0) for _ in range(3)]
    models.load("new")
    assert old.closed, "the old engine was not closed after the swap"
    assert not old.has_unfinished(), "the swap did not drain the old engine"
    assert [models.wait(t).text for t in tickets] == ["old", "old", "old"]
    after = models.submit("a", [1, 2], None, 4, 0.0)
    assert models.wait(after).text == "new"
    assert new.steps == 1


def test_hot_swap_while_threads_generate() -> None:
    old, new = CountingEngine("old"), CountingEngine("new")
    models = ModelService()
    models.register("old", lambda: old)
    models.register("new", lambda: new)
    models.load("old")
    tickets = [models.submit("a", [1], None, 1, 0.0) for _ in range(6)]
    results: dict[int, str] = {}
    barrier = threading.Barrier(7)

    def waiter(i: int) -> None:
        barrier.wait(timeout=10)
        results[i] = models.wait(tickets[i]).text

    threads = [threading.Thread(target=waiter, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    barrier.wait(timeout=10)
    models.load("new")
    for t in threads:
        t.join(timeout=10)
    assert results == dict.fromkeys(range(6), "old"), "an in-flight request was lost or moved"


def test_greedy_only_engine_refuses_temperature() -> None:
    models = ModelService()
    models.register("old", lambda: CountingEngine("old"))
    models.load("old")
    with pytest.raises(UnsupportedError):
        models.submit("a", [1], None, 1, 0.5)
