"""ModelBackend: a decoder-only model that extends token sequences (sync, in process).

Contract
--------
* ``extract_model_spec`` describes the model's KV cache geometry; engines size their block
  pools from it (``ModelCacheSpec.bytes_per_block``). It is constant for a loaded model.
* ``generate`` with ``temperature == 0`` is greedy and deterministic: the same prompt and
  cache give the same tokens, whether or not a cache of a prefix is passed in.
* A ``cache`` passed in must come from a model with the same ``spec_hash``; otherwise
  [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] is raised. The cache passed in
  is
  not mutated; the returned [Generation][portfolio_core.ports.model_backend.Generation] carries the
  extended cache.
* Raises InvalidInputError for an empty prompt, ids outside the vocabulary, or a length
  beyond ``max_seq_len``.
* An [AgentBlocks][portfolio_core.ports.model_backend.AgentBlocks] covers exactly the tokens whose
  keys and values were computed:
  the prompt and every generated token but the last (which was sampled, never fed back).

[PagedModelBackend][portfolio_core.ports.model_backend.PagedModelBackend] is the lower-level
interface a batching engine drives: the
backend owns the KV storage (``allocate_kv_cache``), the engine owns which block holds
which positions (block tables), and ``forward`` runs one batched step over many sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AgentBlocks",
    "ForwardSequence",
    "Generation",
    "ModelBackend",
    "ModelCacheSpec",
    "PagedModelBackend",
]

_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


@dataclass(frozen=True, slots=True)
class ModelCacheSpec:
    """The KV cache geometry of a model."""

    n_layers: int
    n_kv_heads: int
    head_dim: int
    dtype: str
    vocab_size: int
    max_seq_len: int
    model_id: str = ""

    @property
    def dtype_bytes(self) -> int:
        return _DTYPE_BYTES[self.dtype]

    def bytes_per_block(self, block_size: int = 16) -> int:
        """2 (K and V) x block_size x kv_heads x head_dim x dtype bytes x layers."""
        return 2 * block_size * self.n_kv_heads * self.head_dim * self.dtype_bytes * self.n_layers

    @property
    def spec_hash(self) -> str:
        """A stable hash of everything that makes two caches interchangeable."""
        import hashlib

        text = (
            f"{self.model_id}|{self.n_layers}|{self.n_kv_heads}|{self.head_dim}|"
            f"{self.dtype}|{self.vocab_size}|{self.max_seq_len}"
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, eq=False)
class AgentBlocks:
    """An agent's KV cache: the tokens it covers and per-layer key/value tensors.

    ``keys[i]`` and ``values[i]`` are arrays of shape ``(n_kv_heads, len(tokens), head_dim)``
    for layer ``i`` (opaque here, NumPy arrays in the reference backend).
    """

    agent_id: str
    tokens: tuple[int, ...]
    keys: tuple[Any, ...]
    values: tuple[Any, ...]
    spec_hash: str

    @property
    def nbytes(self) -> int:
        return sum(int(getattr(a, "nbytes", 0)) for a in (*self.keys, *self.values))


@dataclass(frozen=True, slots=True)
class Generation:
    """Generated token ids, why generation stopped, and the cache covering prompt + output."""

    tokens: tuple[int, ...]
    finish_reason: str
    cache: AgentBlocks | None = None


@runtime_checkable
class ModelBackend(Protocol):
    """A model that generates tokens; see the module docstring."""

    def extract_model_spec(self) -> ModelCacheSpec:
        """The model's KV cache geometry."""
        ...

    def generate(
        self,
        prompt_tokens: Sequence[int],
        cache: AgentBlocks | None = None,
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop_ids: frozenset[int] = frozenset(),
    ) -> Generation:
        """Extend ``prompt_tokens`` by at most ``max_tokens`` tokens."""
        ...


@dataclass(frozen=True, slots=True)
class ForwardSequence:
    """One sequence's share of a batched forward step.

    ``tokens`` are fed at positions ``start .. start + len(tokens) - 1``; positions before
    ``start`` must already hold keys and values in the cache. ``block_table[i]`` is the
    physical block holding positions ``i * block_size .. (i + 1) * block_size - 1`` and must
    cover every position up to ``start + len(tokens) - 1``.
    """

    tokens: tuple[int, ...]
    start: int
    block_table: tuple[int, ...]


@runtime_checkable
class PagedModelBackend(ModelBackend, Protocol):
    """A model whose KV cache lives in a block pool addressed by block tables.

    Contract: ``forward`` writes the keys and values of every fed token into the slots its
    block table names, and never touches other blocks; its logits for a sequence are the
    same whatever else is in the batch (up to floating-point reassociation). Blocks are
    referred to by index ``0 .. num_blocks - 1`` of the cache from ``allocate_kv_cache``.
    ``forward``, ``read_kv`` and ``write_kv`` raise
    [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] for ids outside the
    vocabulary,
    positions beyond ``max_seq_len``, a block table too short for the positions addressed,
    arrays of the wrong shape, or storage that did not come from ``allocate_kv_cache``.
    """

    def allocate_kv_cache(self, num_blocks: int, block_size: int) -> Any:
        """Fresh KV storage of ``num_blocks`` blocks of ``block_size`` positions each."""
        ...

    def forward(self, kv_cache: Any, batch: Sequence[ForwardSequence]) -> Any:
        """Run one step; logits of each sequence's last fed token, shape (len(batch), vocab)."""
        ...

    def read_kv(
        self, kv_cache: Any, block_table: Sequence[int], num_tokens: int
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Per-layer keys and values of positions ``0 .. num_tokens - 1``, each of shape
        ``(n_kv_heads, num_tokens, head_dim)`` (the layout of
        [AgentBlocks][portfolio_core.ports.model_backend.AgentBlocks])."""
        ...

    def write_kv(
        self,
        kv_cache: Any,
        block_table: Sequence[int],
        start: int,
        keys: Sequence[Any],
        values: Sequence[Any],
    ) -> None:
        """Store per-layer keys/values (``AgentBlocks`` layout) at positions from ``start``."""
        ...
