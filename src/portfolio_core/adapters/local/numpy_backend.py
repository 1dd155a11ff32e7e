"""The reference decoder-only transformer, in NumPy: seeded random weights or a GGUF file.

Architecture: token embedding, ``n_layers`` pre-norm blocks (RMSNorm, grouped-query
attention with rotary position embeddings, SwiGLU MLP), a final RMSNorm and an output
projection. By default the weights are drawn from ``numpy.random.default_rng(seed)``:
nothing is downloaded, and the same config always gives the same model.

With ``weights`` (a path or ``package:<package>/<file>``) the model is a Llama-family GGUF
file instead: its metadata sets the shape (the shape fields must then be left unset), every
tensor is dequantized to float32 once at load time, and the model spec's ``model_id`` and
hash come from the file, so KV caches persisted for one file are refused by another.
GGUF stores the rows of the query and key projections permuted for rotary embeddings on
adjacent pairs; they are permuted back at load time, so one rotation (on the two halves of
each head) serves random and real models alike. An unsupported architecture or tensor type
raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] naming it.

Three attention paths share every other line of the model: full recomputation (no cache,
`NumpyModelBackend.reference_logits`), a contiguous per-sequence cache (``generate``)
and the paged block pool (``forward``), so tests can check that all three agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from portfolio_core.adapters.local import _gguf
from portfolio_core.adapters.local import _numpy_ops as ops
from portfolio_core.adapters.local._numpy_ops import FloatArray, IntArray
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.model_backend import (
    AgentBlocks,
    ForwardSequence,
    Generation,
    ModelCacheSpec,
)

__all__ = ["NumpyModelBackend", "NumpyModelBackendConfig"]

#: attend(layer, q (N, H, D), k (N, KVH, D), v (N, KVH, D)) -> (N, H, D)
_Attend = Callable[[int, FloatArray, FloatArray, FloatArray], FloatArray]


#: queries per attention block in a long prefill (see `NumpyModelBackend._attention`)
_QUERY_CHUNK = 128

_SHAPE_FIELDS = frozenset(
    {"n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size", "rope_theta"}
    | {"norm_eps"}
)


class NumpyModelBackendConfig(BaseModel):
    """Shape and seed of the reference model (small by default: 2 layers, d_model 64)."""

    model_config = ConfigDict(extra="forbid")

    n_layers: int = Field(2, ge=1)
    d_model: int = Field(64, ge=4)
    n_heads: int = Field(4, ge=1)
    n_kv_heads: int = Field(2, ge=1)
    d_ff: int = Field(128, ge=1)
    vocab_size: int = Field(259, ge=2)
    max_seq_len: int = Field(2048, ge=2)
    dtype: Literal["float32", "float64"] = "float32"
    #: the random weights' seed (and, with ``weights``, only the sampler's)
    seed: int = 0
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    #: a GGUF file (path or ``package:<package>/<file>``); its metadata sets the shape, and
    #: ``max_seq_len`` is capped at the file's context length
    weights: str | None = None

    @model_validator(mode="after")
    def _shapes(self) -> Self:
        if self.weights is not None:
            clash = sorted(self.model_fields_set & _SHAPE_FIELDS)
            if clash:
                raise ValueError(
                    f"{', '.join(clash)} cannot be set with weights: the file sets the shape"
                )
            return self
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be a multiple of n_heads")
        if self.n_heads % self.n_kv_heads:
            raise ValueError("n_heads must be a multiple of n_kv_heads")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("the head size must be even (rotary embeddings)")
        return self


class NumpyModelBackend(ops.PagedCache):
    """A small, deterministic transformer: a ``ModelBackend`` and a ``PagedModelBackend``.

    ``NumpyModelBackend()`` builds the default model; keyword arguments override any field
    of `NumpyModelBackendConfig` (``NumpyModelBackend(dtype="float64", seed=3)``).
    Instances hold only read-only weights, so one backend may serve several engines; each
    engine owns the KV storage it allocates.
    """

    config_model: ClassVar[type[BaseModel]] = NumpyModelBackendConfig

    def __init__(self, config: NumpyModelBackendConfig | None = None, **overrides: Any) -> None:
        if config is None:
            try:
                config = NumpyModelBackendConfig(**overrides)
            except ValueError as exc:
                raise InvalidInputError(f"invalid model config: {exc}", field="config") from exc
        elif overrides:
            config = config.model_copy(update=overrides)
        if config.weights is not None:
            model = _gguf.open_gguf(config.weights)
            config = config.model_copy(
                update={
                    "n_layers": model.n_layers,
                    "d_model": model.d_model,
                    "n_heads": model.n_heads,
                    "n_kv_heads": model.n_kv_heads,
                    "d_ff": model.d_ff,
                    "vocab_size": model.vocab_size,
                    "rope_theta": model.rope_theta,
                    "norm_eps": model.norm_eps,
                    "max_seq_len": min(config.max_seq_len, model.context_length),
                }
            )
        self.config = config
        c = config
        self._dtype = np.dtype(c.dtype)
        self._h, self._kvh = c.n_heads, c.n_kv_heads
        self._hd = c.d_model // c.n_heads
        if config.weights is not None:
            model_id = f"gguf:{model.name}:{model.digest}"
            self._load_gguf(model)
        else:
            model_id = (
                f"numpy-ref:seed={c.seed}:d={c.d_model}:h={c.n_heads}:ff={c.d_ff}:"
                f"theta={c.rope_theta}:eps={c.norm_eps}"
            )
            self._random_weights()
        self._spec = ModelCacheSpec(
            n_layers=c.n_layers,
            n_kv_heads=c.n_kv_heads,
            head_dim=self._hd,
            dtype=c.dtype,
            vocab_size=c.vocab_size,
            max_seq_len=c.max_seq_len,
            model_id=model_id,
        )
        self._spec_hash = self._spec.spec_hash
        inv = 1.0 / (c.rope_theta ** (np.arange(0, self._hd, 2, dtype=np.float64) / self._hd))
        angles = np.outer(np.arange(c.max_seq_len, dtype=np.float64), inv)
        self._cos = np.cos(angles).astype(self._dtype)
        self._sin = np.sin(angles).astype(self._dtype)
        self._scale = self._dtype.type(1.0 / np.sqrt(self._hd))
        self._inv_d = self._dtype.type(1.0 / c.d_model)
        self._rng = np.random.default_rng(c.seed + 1)

    def _random_weights(self) -> None:
        c = self.config
        rng = np.random.default_rng(c.seed)

        def w(shape: tuple[int, ...], fan_in: int) -> FloatArray:
            out: FloatArray = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(self._dtype)
            return out

        d, qkv = c.d_model, (self._h + 2 * self._kvh) * self._hd
        self._embed = w((c.vocab_size, d), 1)
        self._layers = [
            (
                np.ones(d, dtype=self._dtype),
                w((d, qkv), d),
                w((self._h * self._hd, d), self._h * self._hd),
                np.ones(d, dtype=self._dtype),
                w((d, 2 * c.d_ff), d),
                w((c.d_ff, d), c.d_ff),
            )
            for _ in range(c.n_layers)
        ]
        self._final_norm = np.ones(d, dtype=self._dtype)
        self._lm_head = w((d, c.vocab_size), d)

    def _load_gguf(self, model: _gguf.GGUFModel) -> None:
        """Dequantize every tensor once; matrices are stored ``(in, out)`` and C-contiguous,
        as the random ones are: a product of a few rows (batched decode) runs 1.4 to 1.5
        times faster on them than on transposed views of the ``(out, in)`` arrays, and as
        fast for one row or a long prefill. A tied output matrix is stored once, as the
        output projection; the embedding is its transposed view (a row lookup per token)."""
        dt = self._dtype

        def mat(w: FloatArray) -> FloatArray:
            out: FloatArray = np.ascontiguousarray(w.T)
            return out

        def vec(name: str) -> FloatArray:
            out: FloatArray = model.tensor(name).astype(dt, copy=False)
            return out

        def unpermute(w: FloatArray, heads: int) -> FloatArray:
            # GGUF row order within a head: (0, hd/2, 1, hd/2 + 1, ...); back to halves
            rows, cols = w.shape
            out: FloatArray = w.reshape(heads, rows // heads // 2, 2, cols).swapaxes(1, 2)
            return out.reshape(rows, cols)

        self._layers = []
        for i in range(model.n_layers):
            p = f"blk.{i}."
            wqkv = np.concatenate(
                (
                    unpermute(vec(p + "attn_q.weight"), self._h),
                    unpermute(vec(p + "attn_k.weight"), self._kvh),
                    vec(p + "attn_v.weight"),
                )
            )
            wgu = np.concatenate((vec(p + "ffn_gate.weight"), vec(p + "ffn_up.weight")))
            self._layers.append(
                (
                    vec(p + "attn_norm.weight"),
                    mat(wqkv),
                    mat(vec(p + "attn_output.weight")),
                    vec(p + "ffn_norm.weight"),
                    mat(wgu),
                    mat(vec(p + "ffn_down.weight")),
                )
            )
            del wqkv, wgu
        self._final_norm = vec("output_norm.weight")
        if model.has("output.weight"):
            self._embed = vec("token_embd.weight")
            self._lm_head = mat(vec("output.weight"))
        else:
            self._lm_head = mat(vec("token_embd.weight"))
            self._embed = self._lm_head.T

    @classmethod
    def from_config(cls, config: NumpyModelBackendConfig) -> Self:
        return cls(config)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"NumpyModelBackend(layers={c.n_layers}, d_model={c.d_model}, heads={c.n_heads}/"
            f"{c.n_kv_heads}, vocab={c.vocab_size}, dtype={c.dtype}, seed={c.seed})"
        )

    # -- model ---------------------------------------------------------------------------

    def extract_model_spec(self) -> ModelCacheSpec:
        return self._spec

    def _norm(self, x: FloatArray, weight: FloatArray) -> FloatArray:
        var = np.square(x).sum(axis=-1, keepdims=True) * self._inv_d
        out: FloatArray = x / np.sqrt(var + self.config.norm_eps) * weight
        return out

    def _rope(self, x: FloatArray, cos: FloatArray, sin: FloatArray) -> FloatArray:
        """Rotate (N, heads, D) by per-row angles; ``cos``/``sin`` are (N, 1, D/2)."""
        half = self._hd // 2
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate((x1 * cos - x2 * sin, x1 * sin + x2 * cos), axis=-1)

    def _attention(
        self, q: FloatArray, k: FloatArray, v: FloatArray, q_pos: IntArray
    ) -> FloatArray:
        """q (B, T, H, D), k/v (B, L, KVH, D), q_pos (B, T) -> (B, T, H, D); causal.

        A long prefill runs in chunks of `_QUERY_CHUNK` queries, each against the keys up to
        its last position only: the causal triangle's masked half is never computed, and
        the score matrix stays small enough for the caches."""
        t = q.shape[1]
        if t <= _QUERY_CHUNK:
            return self._attention_block(q, k, v, q_pos)
        out = np.empty_like(q)
        for s in range(0, t, _QUERY_CHUNK):
            pos = q_pos[:, s : s + _QUERY_CHUNK]
            end = min(int(pos.max()) + 1, k.shape[1])
            out[:, s : s + _QUERY_CHUNK] = self._attention_block(
                q[:, s : s + _QUERY_CHUNK], k[:, :end], v[:, :end], pos
            )
        return out

    def _attention_block(
        self, q: FloatArray, k: FloatArray, v: FloatArray, q_pos: IntArray
    ) -> FloatArray:
        b, t, h, d = q.shape
        length = k.shape[1]
        kvh = self._kvh
        g = h // kvh
        qh = q.reshape(b, t, kvh, g, d).transpose(0, 2, 3, 1, 4).reshape(b, kvh, g * t, d)
        kt, vt = k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3)
        if t > 1:  # prefill: big products, where contiguous operands repay the copy
            kt, vt = np.ascontiguousarray(kt), np.ascontiguousarray(vt)
        scores = (qh @ kt) * self._scale  # (B, KVH, G*T, L)
        allowed = np.arange(length)[None, None, :] <= q_pos[:, :, None]  # (B, T, L)
        if not allowed.all():
            hidden = np.broadcast_to(~allowed[:, None, None], (b, 1, g, t, length))
            np.copyto(scores, -np.inf, where=hidden.reshape(b, 1, g * t, length))
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        out = scores @ vt  # (B, KVH, G*T, D)
        result: FloatArray = out.reshape(b, kvh, g, t, d).transpose(0, 3, 1, 2, 4)
        return result.reshape(b, t, h, d)

    def _run(self, tokens: IntArray, positions: IntArray, attend: _Attend) -> FloatArray:
        """Hidden states (N, d_model) of packed tokens; ``attend`` supplies the context."""
        n = len(tokens)
        h, kvh, hd, ff = self._h, self._kvh, self._hd, self.config.d_ff
        cos = self._cos[positions][:, None, :]  # looked up once, used by every layer
        sin = self._sin[positions][:, None, :]
        x = self._embed[tokens]
        for layer, (attn_norm, wqkv, wo, mlp_norm, wgu, wdown) in enumerate(self._layers):
            qkv = self._norm(x, attn_norm) @ wqkv
            # queries and keys are adjacent columns: one rotation for both
            qk = self._rope(qkv[:, : (h + kvh) * hd].reshape(n, h + kvh, hd), cos, sin)
            v = np.ascontiguousarray(qkv[:, (h + kvh) * hd :].reshape(n, kvh, hd))
            x = x + attend(layer, qk[:, :h], qk[:, h:], v).reshape(n, h * hd) @ wo
            gu = self._norm(x, mlp_norm) @ wgu
            gate, up = gu[:, :ff], gu[:, ff:]
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ wdown
        return x

    def _logits(self, hidden: FloatArray) -> FloatArray:
        out: FloatArray = self._norm(hidden, self._final_norm) @ self._lm_head
        return out

    def reference_logits(self, tokens: Sequence[int]) -> FloatArray:
        """Logits at every position by full recomputation, no cache (for tests): (N, vocab)."""
        ops.check_tokens(tokens, self._spec.vocab_size)
        ids = np.asarray(tokens, dtype=np.int64)
        if len(ids) > self._spec.max_seq_len:
            raise InvalidInputError("sequence longer than max_seq_len", field="tokens")
        pos = np.arange(len(ids), dtype=np.int64)

        def attend(layer: int, q: FloatArray, k: FloatArray, v: FloatArray) -> FloatArray:
            out: FloatArray = self._attention(q[None], k[None], v[None], pos[None])[0]
            return out

        return self._logits(self._run(ids, pos, attend))

    # -- contiguous cache: the ModelBackend port ------------------------------------------

    def generate(
        self,
        prompt_tokens: Sequence[int],
        cache: AgentBlocks | None = None,
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop_ids: frozenset[int] = frozenset(),
    ) -> Generation:
        """Greedy (or sampled) generation with a contiguous per-sequence KV cache.

        A ``cache`` of any prefix is reused: only tokens past the common prefix (and at
        least the last prompt token) are computed. The returned cache covers the prompt and
        every generated token but the last.
        """
        spec = self._spec
        prompt = [int(t) for t in prompt_tokens]
        ops.check_tokens(prompt, spec.vocab_size)
        ops.check_cache(cache, self._spec)
        if max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        if len(prompt) >= spec.max_seq_len:
            raise InvalidInputError(
                f"prompt of {len(prompt)} tokens leaves no room (max_seq_len {spec.max_seq_len})",
                field="prompt_tokens",
            )
        shape = (spec.n_layers, spec.max_seq_len, spec.n_kv_heads, spec.head_dim)
        kc, vc = np.zeros(shape, self._dtype), np.zeros(shape, self._dtype)
        done = 0
        if cache is not None:
            done = min(ops.common_prefix(cache.tokens, prompt), len(prompt) - 1)
            for layer in range(spec.n_layers):
                kc[layer, :done] = np.asarray(cache.keys[layer])[:, :done].transpose(1, 0, 2)
                vc[layer, :done] = np.asarray(cache.values[layer])[:, :done].transpose(1, 0, 2)

        def feed(tokens: list[int], start: int) -> FloatArray:
            pos = np.arange(start, start + len(tokens), dtype=np.int64)
            end = start + len(tokens)

            def attend(layer: int, q: FloatArray, k: FloatArray, v: FloatArray) -> FloatArray:
                kc[layer, start:end] = k
                vc[layer, start:end] = v
                out: FloatArray = self._attention(
                    q[None], kc[layer, None, :end], vc[layer, None, :end], pos[None]
                )[0]
                return out

            hidden = self._run(np.asarray(tokens, dtype=np.int64), pos, attend)
            row: FloatArray = self._logits(hidden[-1:])[0]
            return row

        logits = feed(prompt[done:], done)
        out: list[int] = []
        reason = "length"
        while True:
            token = ops.sample(logits, temperature, self._rng)
            out.append(token)
            if token in stop_ids:
                reason = "stop"
                break
            if len(out) >= max_tokens or len(prompt) + len(out) >= spec.max_seq_len:
                break
            logits = feed([token], len(prompt) + len(out) - 1)
        covered = len(prompt) + len(out) - 1
        blocks = AgentBlocks(
            agent_id=cache.agent_id if cache is not None else "",
            tokens=tuple(prompt + out[:-1]),
            keys=tuple(
                np.ascontiguousarray(kc[i, :covered].transpose(1, 0, 2))
                for i in range(spec.n_layers)
            ),
            values=tuple(
                np.ascontiguousarray(vc[i, :covered].transpose(1, 0, 2))
                for i in range(spec.n_layers)
            ),
            spec_hash=self._spec_hash,
        )
        return Generation(tuple(out), reason, blocks)

    # -- paged cache: the PagedModelBackend port -----------------------------------------

    def discard_kv(self, kv_cache: Any, blocks: Sequence[int]) -> int:
        """Hand the memory of ``blocks`` (which no sequence uses) back to the operating
        system; they read as zeros afterwards. Returns the bytes handed back (whole pages
        only; 0 where the platform cannot). An optional hook of the engine's memory
        release, beyond the port."""
        return ops.discard(ops.check_kv(kv_cache), blocks)

    def forward(self, kv_cache: Any, batch: Sequence[ForwardSequence]) -> FloatArray:
        """One batched step over every sequence: projections and MLP run on all fed tokens
        at once; attention runs once for all single-token (decode) sequences together,
        padded to the longest context, and once per length of multi-token (prefill) chunks:
        chunks of one length attend together, padded to the longest context among them."""
        kv = ops.check_kv(kv_cache)
        n = len(batch)
        if n == 0:
            return np.zeros((0, self._spec.vocab_size), dtype=self._dtype)
        bs = kv.block_size
        spec = self._spec
        # validation and layout with a constant number of NumPy calls per step
        lens_l = [len(s.tokens) for s in batch]
        starts_l = [s.start for s in batch]
        tables_l = [s.block_table for s in batch]
        total = sum(lens_l)
        tokens = np.fromiter(chain.from_iterable(s.tokens for s in batch), np.int64, total)
        ends_l = [st + ln for st, ln in zip(starts_l, lens_l, strict=True)]
        if min(lens_l) < 1:
            raise InvalidInputError("every sequence must feed at least one token", field="batch")
        if tokens.min() < 0 or tokens.max() >= spec.vocab_size:
            raise InvalidInputError(
                f"token ids outside the vocabulary (size {spec.vocab_size})", field="batch"
            )
        if min(starts_l) < 0 or max(ends_l) > spec.max_seq_len:
            raise InvalidInputError(f"positions outside 0..{spec.max_seq_len - 1}", field="batch")
        width = max(len(t) for t in tables_l)
        for i, (end, table) in enumerate(zip(ends_l, tables_l, strict=True)):
            if end > len(table) * bs:
                raise InvalidInputError(
                    f"block table of sequence {i} does not cover position {end - 1}",
                    field="batch",
                )
        tables = np.array(
            [(*t, *(0,) * (width - len(t))) if len(t) < width else t for t in tables_l],
            dtype=np.int64,
        )
        starts = np.array(starts_l, dtype=np.int64)
        groups: list[tuple[IntArray | slice, IntArray, IntArray]] = []  # rows, slots, q_pos
        if total == n:  # every sequence decodes one token: the common, fast case
            positions = starts
            last_rows: IntArray | slice = slice(None)
            new_slots = tables[np.arange(n), starts // bs] * bs + starts % bs
            j = np.arange(max(ends_l))
            groups.append((slice(None), tables[:, j // bs] * bs + j % bs, starts[:, None]))
        else:
            lens = np.array(lens_l, dtype=np.int64)
            ends = np.cumsum(lens)
            first_row = ends - lens
            last_rows = ends - 1
            seq_of_row = np.repeat(np.arange(n), lens)
            positions = np.arange(total) - first_row[seq_of_row] + starts[seq_of_row]
            new_slots = tables[seq_of_row, positions // bs] * bs + positions % bs
            decode = np.flatnonzero(lens == 1)
            if len(decode):
                j = np.arange(int(starts[decode].max()) + 1)
                slots = tables[decode][:, j // bs] * bs + j % bs
                groups.append((first_row[decode], slots, starts[decode][:, None]))
            prefill = np.flatnonzero(lens > 1)
            for t in np.unique(lens[prefill]).tolist():  # one attention per chunk length
                members = prefill[lens[prefill] == t]
                rows = (first_row[members, None] + np.arange(t)).ravel()
                j = np.arange(int(starts[members].max()) + t)
                slots = tables[members][:, j // bs] * bs + j % bs
                groups.append((rows, slots, positions[rows].reshape(len(members), t)))

        def attend(layer: int, q: FloatArray, k: FloatArray, v: FloatArray) -> FloatArray:
            keys, values = kv.keys[layer], kv.values[layer]
            keys[new_slots] = k
            values[new_slots] = v
            out = np.empty_like(q)
            for rows, slots, q_pos in groups:
                b, t = q_pos.shape
                out[rows] = self._attention(
                    q[rows].reshape(b, t, self._h, self._hd),
                    np.take(keys, slots, axis=0),  # much faster than keys[slots]
                    np.take(values, slots, axis=0),
                    q_pos,
                ).reshape(b * t, self._h, self._hd)
            return out

        hidden = self._run(tokens, positions, attend)
        return self._logits(hidden[last_rows])
