"""The inference service: generate for an agent, reusing and updating its KV cache."""

from __future__ import annotations

from dataclasses import dataclass

from portfolio_core.ports.cache_store import CacheStore, CacheStoreCapability
from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import InvalidInputError, NotFoundError
from portfolio_core.ports.generation_engine import FinishReason
from portfolio_core.ports.tokenizer import Tokenizer
from portfolio_core.services.agents import AgentService
from portfolio_core.services.models import ModelService

__all__ = ["GenerationResult", "InferenceService"]


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """What one ``generate`` produced."""

    agent_id: str
    text: str
    tokens: tuple[int, ...]
    finish_reason: FinishReason
    token_count: int
    #: prompt tokens whose KV came from the agent's stored cache
    reused_tokens: int
    model: str


class InferenceService:
    """``generate(agent_id, prompt, max_tokens, temperature)`` over the current model.

    For each call: the prompt is encoded with the tokenizer; the agent's entry in the
    CacheStore is matched against it (a hit of another model's ``spec_hash``, when the
    model service knows it, is not used); the hit is pinned for the duration (when the store
    supports pinning) so eviction cannot drop it mid-request; the request runs on the
    current model; the returned blocks (prompt + output) replace the agent's entry. The
    prompt is the whole conversation so far: the stored cache makes its shared prefix free.

    Raises NotFoundError for an agent the agent service does not know (when one is given),
    InvalidInputError for an empty prompt or ``max_tokens < 1``, UnavailableError when no
    model is loaded, UnsupportedError for ``temperature > 0`` on a greedy-only engine.
    """

    def __init__(
        self,
        models: ModelService,
        store: CacheStore,
        tokenizer: Tokenizer,
        *,
        agents: AgentService | None = None,
    ) -> None:
        self._models = models
        self._store = store
        self._tokenizer = tokenizer
        self._agents = agents

    def generate(
        self, agent_id: str, prompt: str, max_tokens: int = 256, temperature: float = 0.0
    ) -> GenerationResult:
        if self._agents is not None and not self._agents.exists(agent_id):
            raise NotFoundError(f"no agent {agent_id!r}", key=agent_id)
        if max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        if temperature < 0:
            raise InvalidInputError("temperature must be >= 0", field="temperature")
        tokens = self._tokenizer.encode(prompt)
        if not tokens:
            raise InvalidInputError("the prompt is empty", field="prompt")
        spec = self._models.current_spec_hash()
        hit = self._store.get(agent_id, tokens)
        if hit is not None and spec is not None and hit.blocks.spec_hash != spec:
            hit = None  # a cache of the model loaded before a swap
        pinned = hit is not None and supports(self._store, CacheStoreCapability.PINNING)
        if pinned:
            self._store.pin(agent_id)
        try:
            ticket = self._models.submit(
                agent_id, tokens, hit.blocks if hit else None, max_tokens, temperature
            )
            done = self._models.wait(ticket)
        finally:
            if pinned:
                self._store.unpin(agent_id)
        cached = 0
        if done.blocks is not None:
            self._store.put(agent_id, done.blocks)
            cached = len(done.blocks.tokens)
        reused = hit.matched_tokens if hit else 0
        if self._agents is not None:
            self._agents.record_generation(agent_id, cached_tokens=cached, reused_tokens=reused)
        return GenerationResult(
            agent_id,
            done.text,
            done.tokens,
            done.finish_reason,
            done.token_count,
            reused,
            self._models.current() or "",
        )
