"""GenerationEngine: continuous batching of many generations over a fixed KV block pool.

Contract
--------
* ``submit`` queues a request and returns its uid at once; nothing runs until ``step``.
* Each ``step`` admits queued requests while blocks allow, runs one batched decode step for
  every running request, and returns the generations that finished during it.
* Every submitted uid finishes exactly once (stop, length or abort), unless ``submit``
  raised. Greedy outputs do not depend on what else is in the batch, on preemption, or on
  prefix caching.
* ``abort`` of a queued or running uid finishes it with ``finish_reason == "abort"`` (it is
  returned by the next ``step``) and frees its blocks; ``abort`` of an unknown or finished
  uid returns ``False``.
* ``submit`` raises [PoolExhaustedError][portfolio_core.ports.errors.PoolExhaustedError] only when
  the
  request could not fit even in an empty pool, and
  [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] for an empty prompt,
  ``max_tokens < 1``, or a ``cache`` from another model (``spec_hash``).
* ``token_count`` counts generated tokens, the stop token included; ``text`` is their
  decoding without special tokens. ``blocks`` (when the engine returns them) covers the
  prompt and every generated token but the last, and can be passed back as ``cache``;
  aborted generations have ``blocks is None``.
* Sampling: greedy by default (``Sampling()``) and then deterministic. With
  ``temperature > 0`` the next token is drawn from the softmax of ``logits / temperature``
  restricted to the ``top_k`` most likely tokens (0: no limit) and to the smallest set whose
  probability reaches ``top_p``; with a ``seed`` the draws depend only on the seed, the
  prompt and the model, not on what else is in the batch. ``submit`` raises
  InvalidInputError for ``temperature < 0``, ``top_p`` outside ``(0, 1]`` or ``top_k < 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from portfolio_core.ports.model_backend import AgentBlocks

__all__ = ["CompletedGeneration", "FinishReason", "GenerationEngine", "Sampling"]


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


@dataclass(frozen=True, slots=True)
class Sampling:
    """How the next token is chosen; the default is greedy (see the module docstring)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    def check(self) -> None:
        """InvalidInputError naming the first field out of range."""
        from portfolio_core.ports.errors import InvalidInputError

        if not self.temperature >= 0.0:
            raise InvalidInputError("temperature must be >= 0", field="temperature")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInputError("top_p must be in (0, 1]", field="top_p")
        if self.top_k < 0:
            raise InvalidInputError("top_k must be >= 0 (0: no limit)", field="top_k")


@dataclass(frozen=True, slots=True, eq=False)
class CompletedGeneration:
    """A finished request: its text, the agent's updated KV blocks, why it stopped, size."""

    uid: str
    text: str
    blocks: AgentBlocks | None
    finish_reason: FinishReason
    token_count: int
    tokens: tuple[int, ...] = ()


@runtime_checkable
class GenerationEngine(Protocol):
    """A continuous-batching engine (sync port); see the module docstring."""

    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: AgentBlocks | None = None,
        max_tokens: int = 256,
        *,
        sampling: Sampling | None = None,
    ) -> str:
        """Queue a generation; returns its uid.

        ``cache`` is an earlier
        [CompletedGeneration][portfolio_core.ports.generation_engine.CompletedGeneration] ``blocks``
        of the same model:
        the prefix it shares with the prompt is not recomputed. ``sampling`` (default:
        greedy) chooses the tokens.
        """
        ...

    def step(self) -> list[CompletedGeneration]:
        """Run one scheduling and decode step; returns what finished."""
        ...

    def abort(self, uid: str) -> bool:
        """Abort a queued or running request; whether it was pending."""
        ...

    def has_unfinished(self) -> bool:
        """Whether any submitted request has not yet been returned by ``step``."""
        ...
