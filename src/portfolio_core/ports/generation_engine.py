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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from portfolio_core.ports.model_backend import AgentBlocks

__all__ = ["CompletedGeneration", "FinishReason", "GenerationEngine"]


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"


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
    ) -> str:
        """Queue a generation; returns its uid.

        ``cache`` is an earlier
        [CompletedGeneration][portfolio_core.ports.generation_engine.CompletedGeneration] ``blocks``
        of the same model:
        the prefix it shares with the prompt is not recomputed. Decoding is greedy unless
        an adapter offers more (the local engine takes a keyword-only ``temperature``).
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
