"""Agent management: create, delete, list, info."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from portfolio_core.ports.cache_store import CacheStore
from portfolio_core.ports.errors import ConflictError, InvalidInputError, NotFoundError

__all__ = ["AgentInfo", "AgentService"]


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What is known about an agent (a snapshot)."""

    agent_id: str
    created_at: float
    metadata: Mapping[str, str] = field(default_factory=dict)
    generations: int = 0
    #: tokens covered by the cache stored after the agent's last generation (0: none)
    cached_tokens: int = 0
    #: prompt tokens whose KV came from the store in the agent's last generation
    reused_tokens: int = 0


class AgentService:
    """The agents an application serves, and their KV caches in a CacheStore.

    ``create`` raises ConflictError for an existing id and InvalidInputError for an empty
    one; ``delete`` removes the agent and its cache from every tier of the store and returns
    whether the agent existed (idempotent); ``info`` raises NotFoundError for an unknown
    agent; ``list`` is a sorted snapshot. Thread-safe.
    """

    def __init__(self, store: CacheStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._agents: dict[str, AgentInfo] = {}
        self._lock = threading.Lock()

    def create(self, agent_id: str, metadata: Mapping[str, str] | None = None) -> AgentInfo:
        if not isinstance(agent_id, str) or not agent_id:
            raise InvalidInputError("agent_id must be a non-empty string", field="agent_id")
        with self._lock:
            if agent_id in self._agents:
                raise ConflictError(f"agent {agent_id!r} already exists")
            info = AgentInfo(agent_id, self._clock(), MappingProxyType(dict(metadata or {})))
            self._agents[agent_id] = info
            return info

    def delete(self, agent_id: str) -> bool:
        with self._lock:
            existed = self._agents.pop(agent_id, None) is not None
        cached = self._store.delete(agent_id)
        return existed or cached

    def list(self) -> list[str]:
        with self._lock:
            return sorted(self._agents)

    def info(self, agent_id: str) -> AgentInfo:
        with self._lock:
            info = self._agents.get(agent_id)
        if info is None:
            raise NotFoundError(f"no agent {agent_id!r}", key=agent_id)
        return info

    def exists(self, agent_id: str) -> bool:
        with self._lock:
            return agent_id in self._agents

    def record_generation(self, agent_id: str, *, cached_tokens: int, reused_tokens: int) -> None:
        """Count a finished generation (called by the inference service)."""
        with self._lock:
            info = self._agents.get(agent_id)
            if info is not None:
                self._agents[agent_id] = replace(
                    info,
                    generations=info.generations + 1,
                    cached_tokens=cached_tokens,
                    reused_tokens=reused_tokens,
                )
