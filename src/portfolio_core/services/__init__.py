"""Inbound services: what an application (or an HTTP layer) calls, built on ports only.

* `AgentService` -- create, delete, list and describe agents;
* `ModelService` -- load, unload, list and swap the model serving generations (a hot
  swap drains in-flight requests first);
* `InferenceService` -- ``generate(agent_id, prompt, max_tokens, temperature)``:
  looks the agent's KV cache up in a [CacheStore][portfolio_core.ports.CacheStore], runs the
  request through the current [GenerationEngine][portfolio_core.ports.GenerationEngine], and stores
  the returned blocks for the agent's next turn.

Services import only ``portfolio_core.ports`` (an import-linter contract enforces it), so
any adapters wired by a manifest can drive them.
"""

from __future__ import annotations

from portfolio_core.services.agents import AgentInfo, AgentService
from portfolio_core.services.inference import GenerationResult, InferenceService
from portfolio_core.services.models import ModelInfo, ModelService

__all__ = [
    "AgentInfo",
    "AgentService",
    "GenerationResult",
    "InferenceService",
    "ModelInfo",
    "ModelService",
]
