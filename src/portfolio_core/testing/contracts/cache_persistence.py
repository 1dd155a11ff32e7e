"""Contract suite of the CachePersistence port (sync), with a state machine.

Blocks are built with NumPy (the ``llm`` extra); the suite is skipped without it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

from portfolio_core.ports.cache_persistence import CachePersistence
from portfolio_core.ports.errors import InvalidInputError, NotFoundError
from portfolio_core.ports.model_backend import AgentBlocks
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.concurrency import run_in_threads
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = ["CachePersistenceContract", "PersistenceMachine", "make_blocks"]

SPEC = "kit-spec-0001"


def make_blocks(agent_id: str, seed: int, length: int = 3, spec_hash: str = SPEC) -> AgentBlocks:
    """Deterministic blocks: 2 layers of float32 arrays (1 head, ``length`` tokens, dim 4)."""
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(seed)
    shape = (1, length, 4)
    return AgentBlocks(
        agent_id,
        tuple(int(t) for t in rng.integers(0, 100, length)),
        tuple(rng.standard_normal(shape).astype("float32") for _ in range(2)),
        tuple(rng.standard_normal(shape).astype("float32") for _ in range(2)),
        spec_hash,
    )


def same_blocks(a: AgentBlocks, b: AgentBlocks) -> bool:
    """Equal tokens, spec and every tensor (shape, dtype and values)."""
    np = pytest.importorskip("numpy")
    if (a.agent_id, a.tokens, a.spec_hash) != (b.agent_id, b.tokens, b.spec_hash):
        return False
    pairs = list(zip(a.keys, b.keys, strict=False)) + list(zip(a.values, b.values, strict=False))
    if len(a.keys) != len(b.keys) or len(a.values) != len(b.values):
        return False
    return all(
        x.shape == y.shape and x.dtype == y.dtype and bool(np.array_equal(x, y)) for x, y in pairs
    )


class PersistenceMachine(AdapterMachine[CachePersistence]):
    """Saves, loads and deletes against a dict model of agent -> seed."""

    def __init__(self, factory: Factory, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.model: dict[str, int] = {}

    agents = st.sampled_from(["a", "b", "c"])

    @rule(agent=agents, seed=st.integers(0, 3))
    def save(self, agent: str, seed: int) -> None:
        self.adapter.save(agent, make_blocks(agent, seed))
        self.model[agent] = seed

    @rule(agent=agents)
    def load(self, agent: str) -> None:
        if agent in self.model:
            loaded = self.adapter.load(agent, SPEC)
            assert same_blocks(loaded, make_blocks(agent, self.model[agent])), (
                f"load({agent!r}) differs from the last save"
            )
        else:
            with pytest.raises(NotFoundError):
                self.adapter.load(agent, SPEC)

    @rule(agent=agents)
    def delete(self, agent: str) -> None:
        assert self.adapter.delete(agent) is (agent in self.model)
        self.model.pop(agent, None)

    @rule()
    def listing(self) -> None:
        assert self.adapter.list_cached_agents() == sorted(self.model)
        for agent in ("a", "b", "c"):
            assert self.adapter.exists(agent) is (agent in self.model)


class CachePersistenceContract(ContractSuite[CachePersistence]):
    """The promises of [CachePersistence][portfolio_core.ports.CachePersistence]."""

    port_key = "cache_persistence"

    def put_probe(self, adapter: CachePersistence) -> str:
        adapter.save("kit-probe", make_blocks("kit-probe", 0))
        return "kit-probe"

    def has_probe(self, adapter: CachePersistence, probe: str) -> bool:
        return adapter.exists(probe)

    @clause("cache_persistence.round_trip", "load returns what was saved, tensor by tensor")
    def test_round_trip(self, adapter: CachePersistence) -> None:
        blocks = make_blocks("agent-1", 1)
        adapter.save("agent-1", blocks)
        assert adapter.exists("agent-1")
        assert same_blocks(adapter.load("agent-1", SPEC), blocks)

    @clause("cache_persistence.save.replaces", "saving again replaces the previous cache")
    def test_save_replaces(self, adapter: CachePersistence) -> None:
        adapter.save("agent-1", make_blocks("agent-1", 1))
        adapter.save("agent-1", make_blocks("agent-1", 2, length=5))
        assert same_blocks(adapter.load("agent-1", SPEC), make_blocks("agent-1", 2, length=5))

    @clause(
        "cache_persistence.load.missing", "load of an agent with nothing saved raises NotFoundError"
    )
    def test_load_missing(self, adapter: CachePersistence) -> None:
        with pytest.raises(NotFoundError):
            adapter.load("nobody", SPEC)

    @clause(
        "cache_persistence.load.foreign_model",
        "load with another spec_hash raises InvalidInputError (a cache of another model)",
    )
    def test_foreign_model(self, adapter: CachePersistence) -> None:
        adapter.save("agent-1", make_blocks("agent-1", 1))
        with pytest.raises(InvalidInputError):
            adapter.load("agent-1", "another-model")

    @clause("cache_persistence.delete.idempotent", "delete returns whether something was removed")
    def test_delete(self, adapter: CachePersistence) -> None:
        adapter.save("agent-1", make_blocks("agent-1", 1))
        assert adapter.delete("agent-1") is True
        assert adapter.delete("agent-1") is False
        assert not adapter.exists("agent-1")
        with pytest.raises(NotFoundError):
            adapter.load("agent-1", SPEC)

    @clause("cache_persistence.list.sorted", "list_cached_agents is a sorted snapshot")
    def test_list_sorted(self, adapter: CachePersistence) -> None:
        for agent in ("c", "a", "b"):
            adapter.save(agent, make_blocks(agent, 0))
        listed = adapter.list_cached_agents()
        assert listed == ["a", "b", "c"]
        listed.clear()
        assert adapter.list_cached_agents() == ["a", "b", "c"]

    @clause(
        "cache_persistence.save.atomic",
        "concurrent saves of one agent leave exactly one complete cache",
    )
    def test_concurrent_saves(self, adapter: CachePersistence) -> None:
        candidates = [make_blocks("agent-1", seed, length=4 + seed) for seed in range(4)]
        results = run_in_threads(4, lambda i: adapter.save("agent-1", candidates[i]))
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"concurrent saves failed: {errors!r}"
        loaded = adapter.load("agent-1", SPEC)
        assert any(same_blocks(loaded, c) for c in candidates), "a torn or mixed cache was loaded"

    @clause("cache_persistence.model", "any sequence of saves, loads and deletes matches a dict")
    def test_state_machine(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        pytest.importorskip("numpy")
        run_machine(PersistenceMachine, make_adapter, kit_settings)
