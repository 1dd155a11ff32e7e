"""A simulated model: the next token is a pure function of the prefix, for scheduler tests.

Its KV cache is real paged storage: the "key" of a position is the token fed there and the
"value" its position. ``forward`` reads each sequence's prefix back *from the cache* through
its block table and computes the next token from what it read, so an engine that maps
blocks wrongly, frees a block still in use or shares one it should not produces different
tokens — and a position stored in the wrong slot is reported at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters.local import _numpy_ops as ops
from portfolio_core.adapters.local._numpy_ops import FloatArray, PagedKV
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.model_backend import (
    AgentBlocks,
    ForwardSequence,
    Generation,
    ModelCacheSpec,
)

__all__ = ["SimulatedModelBackend", "SimulatedModelBackendConfig"]

_MASK = (1 << 61) - 1


class SimulatedModelBackendConfig(BaseModel):
    """Configuration of `SimulatedModelBackend`."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(259, ge=2)
    #: defaults to ``vocab_size - 2`` (the EOS id of the default byte tokenizer: 257)
    eos_token_id: int | None = None
    #: ordinary tokens are drawn from ``0 .. regular_tokens - 1`` (default: min(vocab, 256))
    regular_tokens: int | None = None
    #: emit EOS once the sequence (prompt + output) has this many tokens
    eos_at_length: int | None = Field(None, ge=1)
    #: also emit EOS when the prefix hash is divisible by this (pseudo-random lengths)
    eos_modulus: int | None = Field(None, ge=2)
    max_seq_len: int = Field(4096, ge=2)


class SimulatedModelBackend(ops.PagedCache):
    """``next = script(prefix)``; EOS at a chosen length. A ModelBackend and PagedModelBackend.

    The default script hashes the whole prefix, so every token depends on every earlier
    one. Pass ``script=`` for a custom rule (it must return an id below ``vocab_size``).
    """

    config_model: ClassVar[type[BaseModel]] = SimulatedModelBackendConfig

    def __init__(
        self,
        config: SimulatedModelBackendConfig | None = None,
        *,
        script: Callable[[Sequence[int]], int] | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = SimulatedModelBackendConfig(**overrides)
        elif overrides:
            config = config.model_copy(update=overrides)
        self.config = config
        self._eos = (
            config.eos_token_id if config.eos_token_id is not None else config.vocab_size - 2
        )
        if not 0 <= self._eos < config.vocab_size:
            raise InvalidInputError("eos_token_id outside the vocabulary", field="eos_token_id")
        self._regular = config.regular_tokens or min(config.vocab_size, 256)
        self._script = script
        self._spec = ModelCacheSpec(
            n_layers=1,
            n_kv_heads=1,
            head_dim=1,
            dtype="float64",
            vocab_size=config.vocab_size,
            max_seq_len=config.max_seq_len,
            model_id=f"scripted:eos={self._eos}:at={config.eos_at_length}:mod={config.eos_modulus}",
        )
        self._spec_hash = self._spec.spec_hash
        self.forward_calls = 0
        self.forwarded_tokens = 0

    @classmethod
    def from_config(cls, config: SimulatedModelBackendConfig) -> Self:
        return cls(config)

    def __repr__(self) -> str:
        return f"SimulatedModelBackend(vocab_size={self.config.vocab_size}, eos={self._eos})"

    def extract_model_spec(self) -> ModelCacheSpec:
        return self._spec

    def next_token(self, prefix: Sequence[int]) -> int:
        """The scripted continuation of ``prefix``."""
        if self._script is not None:
            return int(self._script(prefix))
        c = self.config
        if c.eos_at_length is not None and len(prefix) >= c.eos_at_length:
            return self._eos
        h = 1469598103934665603
        for t in prefix:
            h = ((h ^ (int(t) + 1)) * 1099511628211) & _MASK
        if c.eos_modulus is not None and (h >> 7) % c.eos_modulus == 0:
            return self._eos
        token = (h >> 17) % self._regular
        return token + 1 if token == self._eos else token

    def _one_hot(self, tokens: Sequence[int]) -> FloatArray:
        logits = np.zeros((len(tokens), self._spec.vocab_size))
        logits[np.arange(len(tokens)), np.asarray(tokens, dtype=np.int64)] = 1.0
        return logits

    def generate(
        self,
        prompt_tokens: Sequence[int],
        cache: AgentBlocks | None = None,
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop_ids: frozenset[int] = frozenset(),
    ) -> Generation:
        """Follow the script (``temperature`` is ignored: the script is the distribution)."""
        prompt = [int(t) for t in prompt_tokens]
        ops.check_tokens(prompt, self._spec.vocab_size)
        ops.check_cache(cache, self._spec)
        if max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        if len(prompt) >= self._spec.max_seq_len:
            raise InvalidInputError("the prompt leaves no room", field="prompt_tokens")
        seq, out, reason = list(prompt), [], "length"
        while True:
            token = self.next_token(seq)
            out.append(token)
            seq.append(token)
            if token in stop_ids:
                reason = "stop"
                break
            if len(out) >= max_tokens or len(seq) >= self._spec.max_seq_len:
                break
        covered = np.asarray(seq[:-1], dtype=np.float64)
        blocks = AgentBlocks(
            agent_id=cache.agent_id if cache is not None else "",
            tokens=tuple(seq[:-1]),
            keys=(covered[None, :, None],),
            values=(np.arange(len(covered), dtype=np.float64)[None, :, None],),
            spec_hash=self._spec_hash,
        )
        return Generation(tuple(out), reason, blocks)

    def allocate_kv_cache(self, num_blocks: int, block_size: int) -> PagedKV:
        kv = super().allocate_kv_cache(num_blocks, block_size)
        kv.values[:] = -1.0
        return kv

    def forward(self, kv_cache: Any, batch: Sequence[ForwardSequence]) -> FloatArray:
        """Store each fed token, read every prefix back from the pool, apply the script.

        Raises InvalidInputError if a slot read back holds another position than the one
        the block table says it holds (a block was overwritten or mapped wrongly).
        """
        kv = ops.check_kv(kv_cache)
        ops.check_batch(batch, self._spec, kv.block_size)
        self.forward_calls += 1
        out = []
        for seq in batch:
            end = seq.start + len(seq.tokens)
            new = ops.slots_of(seq.block_table, seq.start, end, kv.block_size)
            kv.keys[0, new, 0, 0] = seq.tokens
            kv.values[0, new, 0, 0] = np.arange(seq.start, end)
            self.forwarded_tokens += len(seq.tokens)
            slots = ops.slots_of(seq.block_table, 0, end, kv.block_size)
            stored = kv.values[0, slots, 0, 0]
            if not np.array_equal(stored, np.arange(end)):
                bad = int(np.flatnonzero(stored != np.arange(end))[0])
                raise InvalidInputError(
                    f"slot for position {bad} holds position {stored[bad]:.0f}: "
                    "the block table maps a block that another sequence overwrote or never wrote",
                    field="batch",
                )
            prefix = kv.keys[0, slots, 0, 0].astype(np.int64).tolist()
            out.append(self.next_token(prefix))
        return self._one_hot(out)
