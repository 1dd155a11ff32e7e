"""CachePersistence: KV caches on durable storage (the cold tier), sync.

Contract
--------
* ``save`` writes atomically: a concurrent or crashed save never leaves a file that ``load``
  accepts half-written. Saving again replaces the previous cache of that agent.
* ``load(agent_id, spec_hash)`` returns what was saved, equal tensor by tensor, or raises
  [NotFoundError][portfolio_core.ports.errors.NotFoundError] when nothing is saved and
  [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] when the saved cache belongs to
  a
  model with another ``spec_hash`` (a cache from another model is refused).
* ``delete`` is idempotent and returns whether something was removed.
* ``list_cached_agents`` is a sorted snapshot of agent ids with a saved cache.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from portfolio_core.ports.model_backend import AgentBlocks

__all__ = ["CachePersistence"]


@runtime_checkable
class CachePersistence(Protocol):
    """Durable storage of per-agent KV caches; see the module docstring."""

    def save(self, agent_id: str, blocks: AgentBlocks) -> None:
        """Write the agent's cache atomically."""
        ...

    def load(self, agent_id: str, spec_hash: str) -> AgentBlocks:
        """Read the agent's cache, refusing one from another model."""
        ...

    def exists(self, agent_id: str) -> bool:
        """Whether a cache is saved for the agent."""
        ...

    def delete(self, agent_id: str) -> bool:
        """Remove the agent's saved cache; whether there was one."""
        ...

    def list_cached_agents(self) -> list[str]:
        """Sorted ids of agents with a saved cache."""
        ...
