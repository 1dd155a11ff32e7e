"""Scripted doubles of the inference ports (synchronous): Tokenizer, ModelBackend,
GenerationEngine, CacheStore, CachePersistence (see the package docstring).

Only what differs from "answer from the script" is written here; every other port method is
generated from the port's protocol by `_Scripted`.
"""

from __future__ import annotations

from collections.abc import (
    Mapping,
    Sequence,
)
from typing import Any, ClassVar, cast

from portfolio_core.ports.cache_persistence import CachePersistence
from portfolio_core.ports.cache_store import CacheStore, CacheStoreCapability, CacheStoreStats
from portfolio_core.ports.errors import InvalidInputError, NotFoundError, UnsupportedError
from portfolio_core.ports.generation_engine import (
    CompletedGeneration,
    GenerationEngine,
    Sampling,
)
from portfolio_core.ports.model_backend import (
    AgentBlocks,
    Generation,
    ModelBackend,
    ModelCacheSpec,
)
from portfolio_core.ports.tokenizer import Tokenizer
from portfolio_core.testing.doubles._core import _Scripted, computed

__all__ = [
    "ScriptedCachePersistence",
    "ScriptedCacheStore",
    "ScriptedGenerationEngine",
    "ScriptedModelBackend",
    "ScriptedTokenizer",
]


# -- inference ports (sync) --------------------------------------------------------------------


class ScriptedTokenizer(_Scripted, port=Tokenizer):
    """A UTF-8 byte tokenizer (ids 0-255, EOS 256) unless ``encode``/``decode`` are scripted."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "encode": computed(lambda text, add_special_tokens=False: list(text.encode("utf-8"))),
        "decode": computed(
            lambda ids, skip_special_tokens=True: bytes(i for i in ids if i < 256).decode(
                "utf-8", errors="replace"
            )
        ),
    }

    @property
    def eos_token_id(self) -> int:
        return 256

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({256})

    @property
    def bos_token_id(self) -> int | None:
        return None

    @property
    def vocab_size(self) -> int:
        return 257


_SPEC = ModelCacheSpec(
    n_layers=1, n_kv_heads=1, head_dim=4, dtype="float32", vocab_size=257, max_seq_len=512
)


class ScriptedModelBackend(_Scripted, port=ModelBackend):
    """A model backend with a fixed spec and canned generations (default: EOS at once)."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "generate": computed(lambda *a, **k: Generation((256,), "stop"))
    }

    def __init__(self, spec: ModelCacheSpec = _SPEC, **answers: Any) -> None:
        super().__init__(**answers)
        self.spec = spec

    def extract_model_spec(self) -> ModelCacheSpec:
        self._log("extract_model_spec", (), {})
        return self.spec


class ScriptedGenerationEngine(_Scripted, port=GenerationEngine):
    """An engine whose ``step`` returns scripted lists of completions.

    Unscripted: ``submit`` numbers uids ``uid-1, uid-2, ...`` and the next ``step`` finishes
    every pending request with an empty ``stop`` generation.
    """

    def __init__(self, **answers: Any) -> None:
        super().__init__(**answers)
        self.pending: dict[str, str] = {}
        self._counter = 0

    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: AgentBlocks | None = None,
        max_tokens: int = 256,
        *,
        sampling: Sampling | None = None,
    ) -> str:
        if self._scripted("submit"):
            uid = cast(str, self._answer("submit", agent_id, prompt, cache, max_tokens))
        else:
            self._log("submit", (agent_id, prompt, cache, max_tokens), {})
            self._counter += 1
            uid = f"uid-{self._counter}"
        self.pending[uid] = agent_id
        return uid

    def step(self) -> list[CompletedGeneration]:
        if self._scripted("step"):
            done = cast(list[CompletedGeneration], self._answer("step"))
        else:
            from portfolio_core.ports.generation_engine import FinishReason

            self._log("step", (), {})
            done = [
                CompletedGeneration(uid, "", None, FinishReason.STOP, 0) for uid in self.pending
            ]
        for generation in done:
            self.pending.pop(generation.uid, None)
        return done

    def abort(self, uid: str) -> bool:
        self._log("abort", (uid,), {})
        return uid in self.pending

    def has_unfinished(self) -> bool:
        self._log("has_unfinished", (), {})
        return bool(self.pending)


class ScriptedCacheStore(_Scripted, port=CacheStore):
    """A KV cache store with canned ``get`` hits (default: always a miss)."""

    _capabilities = frozenset({CacheStoreCapability.TIERS.value})
    _defaults: ClassVar[Mapping[str, Any]] = {
        "get": None,
        "put": None,
        "evict": False,
        "delete": False,
    }

    @property
    def block_size(self) -> int:
        return 16

    def pin(self, agent_id: str) -> None:
        raise UnsupportedError(
            "ScriptedCacheStore has no pinning", capability=CacheStoreCapability.PINNING.value
        )

    def unpin(self, agent_id: str) -> bool:
        raise UnsupportedError(
            "ScriptedCacheStore has no pinning", capability=CacheStoreCapability.PINNING.value
        )

    def stats(self) -> CacheStoreStats:
        return CacheStoreStats()


class ScriptedCachePersistence(_Scripted, port=CachePersistence):
    """Cache persistence over a dict unless scripted: ``load`` of a missing agent raises
    ``NotFoundError``; a foreign ``spec_hash`` raises ``InvalidInputError``."""

    def __init__(self, **answers: Any) -> None:
        super().__init__(**answers)
        self.saved: dict[str, AgentBlocks] = {}

    def save(self, agent_id: str, blocks: AgentBlocks) -> None:
        if self._scripted("save"):
            self._answer("save", agent_id, blocks)
            return
        self._log("save", (agent_id, blocks), {})
        self.saved[agent_id] = blocks

    def load(self, agent_id: str, spec_hash: str) -> AgentBlocks:
        if self._scripted("load"):
            return cast(AgentBlocks, self._answer("load", agent_id, spec_hash))
        self._log("load", (agent_id, spec_hash), {})
        if agent_id not in self.saved:
            raise NotFoundError(f"no cache saved for agent {agent_id!r}", key=agent_id)
        blocks = self.saved[agent_id]
        if blocks.spec_hash != spec_hash:
            raise InvalidInputError(
                f"the cache of {agent_id!r} belongs to another model", field="spec_hash"
            )
        return blocks

    def exists(self, agent_id: str) -> bool:
        self._log("exists", (agent_id,), {})
        return agent_id in self.saved

    def delete(self, agent_id: str) -> bool:
        self._log("delete", (agent_id,), {})
        return self.saved.pop(agent_id, None) is not None

    def list_cached_agents(self) -> list[str]:
        self._log("list_cached_agents", (), {})
        return sorted(self.saved)
