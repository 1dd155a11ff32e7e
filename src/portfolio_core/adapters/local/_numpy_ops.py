"""NumPy building blocks shared by the local backends (private)."""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.model_backend import AgentBlocks, ForwardSequence, ModelCacheSpec

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.int64]


@dataclass(eq=False)
class PagedKV:
    """KV storage of a block pool: ``keys[layer, slot, kv_head, dim]``, slot = block * size + i.

    ``buffers`` are the anonymous memory maps holding ``keys`` and ``values`` (empty for
    arrays made otherwise): their pages are committed when first written and `discard`
    hands them back.
    """

    keys: FloatArray
    values: FloatArray
    num_blocks: int
    block_size: int
    buffers: tuple[mmap.mmap, ...] = ()


def allocate(spec: ModelCacheSpec, num_blocks: int, block_size: int) -> PagedKV:
    if num_blocks < 1 or block_size < 1:
        raise InvalidInputError("num_blocks and block_size must be positive", field="num_blocks")
    shape = (spec.n_layers, num_blocks * block_size, spec.n_kv_heads, spec.head_dim)
    keys, key_map = _zeros(shape, np.dtype(spec.dtype))
    values, value_map = _zeros(shape, np.dtype(spec.dtype))
    return PagedKV(keys, values, num_blocks, block_size, (key_map, value_map))


def _zeros(shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[FloatArray, mmap.mmap]:
    """A zero array in a private anonymous memory map of its own (zero-filled by the OS,
    committed page by page as it is written)."""
    count = int(np.prod(shape))
    size = max(1, count * dtype.itemsize)
    private = getattr(mmap, "MAP_PRIVATE", None)
    # private: discarded pages are freed, not kept by a shared mapping's backing store
    buffer = mmap.mmap(-1, size) if private is None else mmap.mmap(-1, size, flags=private)
    array: FloatArray = np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)
    return array, buffer


def discard(kv: PagedKV, blocks: Sequence[int]) -> int:
    """Hand the memory pages of ``blocks`` back to the operating system; they read as zeros
    afterwards. Only whole pages inside the blocks' byte ranges are handed back, so blocks
    smaller than a page free something only when neighbours are discarded with them.
    Returns the bytes handed back (0 where ``madvise`` is not available)."""
    advise = getattr(mmap, "MADV_DONTNEED", None)
    if advise is None or not kv.buffers or not blocks:
        return 0
    page = mmap.PAGESIZE
    runs: list[tuple[int, int]] = []
    for block in sorted(set(blocks)):
        if runs and runs[-1][1] == block:
            runs[-1] = (runs[-1][0], block + 1)
        else:
            runs.append((block, block + 1))
    freed = 0
    for array, buffer in zip((kv.keys, kv.values), kv.buffers, strict=True):
        layer_bytes = array.strides[0]
        block_bytes = array.strides[1] * kv.block_size
        for layer in range(array.shape[0]):
            for first, end in runs:
                start = layer * layer_bytes + first * block_bytes
                stop = layer * layer_bytes + end * block_bytes
                start = -(-start // page) * page
                stop = stop // page * page
                if stop > start:
                    buffer.madvise(advise, start, stop - start)
                    freed += stop - start
    return freed


def check_kv(kv: object) -> PagedKV:
    if not isinstance(kv, PagedKV):
        raise InvalidInputError("kv_cache must come from allocate_kv_cache", field="kv_cache")
    return kv


def slots_of(block_table: Sequence[int], start: int, stop: int, block_size: int) -> IntArray:
    """Pool slots of positions ``start .. stop - 1``."""
    pos = np.arange(start, stop, dtype=np.int64)
    table = np.asarray(block_table, dtype=np.int64)
    if stop > len(table) * block_size:
        raise InvalidInputError(
            f"block table of {len(table)} blocks does not cover position {stop - 1}",
            field="block_table",
        )
    result: IntArray = table[pos // block_size] * block_size + pos % block_size
    return result


def read_kv(
    kv: PagedKV, block_table: Sequence[int], num_tokens: int
) -> tuple[tuple[FloatArray, ...], tuple[FloatArray, ...]]:
    slots = slots_of(block_table, 0, num_tokens, kv.block_size)
    keys = tuple(
        np.ascontiguousarray(np.take(kv.keys[i], slots, axis=0).transpose(1, 0, 2))
        for i in range(len(kv.keys))
    )
    values = tuple(
        np.ascontiguousarray(np.take(kv.values[i], slots, axis=0).transpose(1, 0, 2))
        for i in range(len(kv.values))
    )
    return keys, values


def write_kv(
    kv: PagedKV,
    block_table: Sequence[int],
    start: int,
    keys: Sequence[Any],
    values: Sequence[Any],
) -> None:
    if len(keys) != len(kv.keys) or len(values) != len(kv.values):
        raise InvalidInputError("one key and one value array per layer expected", field="keys")
    if not keys:
        return
    n = int(np.shape(keys[0])[1])
    slots = slots_of(block_table, start, start + n, kv.block_size)
    for layer, (k, v) in enumerate(zip(keys, values, strict=True)):
        k_arr, v_arr = np.asarray(k), np.asarray(v)
        expected = (kv.keys.shape[2], n, kv.keys.shape[3])
        if k_arr.shape != expected or v_arr.shape != expected:
            raise InvalidInputError(
                f"layer {layer}: expected key/value shape {expected}, got {k_arr.shape}",
                field="keys",
            )
        kv.keys[layer][slots] = k_arr.transpose(1, 0, 2)
        kv.values[layer][slots] = v_arr.transpose(1, 0, 2)


def check_cache(cache: AgentBlocks | None, spec: ModelCacheSpec) -> None:
    """InvalidInputError unless ``cache`` is None or an AgentBlocks of this model, well formed."""
    if cache is None:
        return
    if cache.spec_hash != spec.spec_hash:
        raise InvalidInputError(
            f"cache was built by another model (spec {cache.spec_hash}, "
            f"this model {spec.spec_hash})",
            field="cache",
        )
    shape = (spec.n_kv_heads, len(cache.tokens), spec.head_dim)
    arrays = (*cache.keys, *cache.values)
    if len(cache.keys) != spec.n_layers or len(cache.values) != spec.n_layers:
        raise InvalidInputError(
            f"cache has {len(cache.keys)} key and {len(cache.values)} value arrays, "
            f"expected {spec.n_layers} of each",
            field="cache",
        )
    if any(tuple(np.shape(a)) != shape for a in arrays):
        raise InvalidInputError(f"cache arrays must have shape {shape}", field="cache")


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def check_tokens(tokens: Sequence[int], vocab_size: int, field: str = "prompt_tokens") -> None:
    if not tokens:
        raise InvalidInputError("the prompt is empty", field=field)
    for t in tokens:
        if not 0 <= int(t) < vocab_size:
            raise InvalidInputError(
                f"token id {t} is outside the vocabulary (size {vocab_size})", field=field
            )


def check_batch(batch: Sequence[ForwardSequence], spec: ModelCacheSpec, block_size: int) -> None:
    """Validate a forward batch with a constant number of Python operations per sequence."""
    if not batch:
        return
    tokens = np.fromiter(
        (t for seq in batch for t in seq.tokens),
        dtype=np.int64,
        count=sum(len(s.tokens) for s in batch),
    )
    if any(not seq.tokens for seq in batch):
        raise InvalidInputError("every sequence must feed at least one token", field="batch")
    if tokens.min() < 0 or tokens.max() >= spec.vocab_size:
        raise InvalidInputError(
            f"token ids outside the vocabulary (size {spec.vocab_size})", field="batch"
        )
    starts = np.fromiter((s.start for s in batch), dtype=np.int64, count=len(batch))
    ends = starts + np.fromiter((len(s.tokens) for s in batch), dtype=np.int64, count=len(batch))
    covered = np.fromiter((len(s.block_table) for s in batch), np.int64, len(batch)) * block_size
    if starts.min() < 0 or ends.max() > spec.max_seq_len:
        raise InvalidInputError(f"positions outside 0..{spec.max_seq_len - 1}", field="batch")
    if (ends > covered).any():
        i = int(np.flatnonzero(ends > covered)[0])
        raise InvalidInputError(
            f"block table of sequence {i} does not cover position {int(ends[i]) - 1}",
            field="batch",
        )


def sample(
    logits: FloatArray,
    temperature: float,
    rng: np.random.Generator,
    *,
    top_p: float = 1.0,
    top_k: int = 0,
) -> int:
    """Greedy for ``temperature == 0`` (or ``top_k == 1``), else a draw from
    softmax(logits / temperature) over the ``top_k`` most likely tokens (0: all) and, of
    those, the smallest most-likely set whose probability reaches ``top_p``."""
    if temperature <= 0.0 or top_k == 1:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    keep = np.argpartition(z, -top_k)[-top_k:] if 0 < top_k < len(z) else np.arange(len(z))
    order = keep[np.argsort(-z[keep], kind="stable")]
    p = np.exp(z[order] - z[order[0]])
    p /= p.sum()
    if top_p < 1.0:
        cut = int(np.searchsorted(np.cumsum(p), top_p)) + 1  # reach top_p, keep the crosser
        order, p = order[:cut], p[:cut] / p[:cut].sum()
    return int(order[rng.choice(len(p), p=p)])


class PagedCache:
    """The paged-cache half of the PagedModelBackend port as both NumPy backends keep it:
    one `PagedKV` pool shaped by ``self._spec``, read and written through a block table."""

    _spec: ModelCacheSpec

    def allocate_kv_cache(self, num_blocks: int, block_size: int) -> PagedKV:
        return allocate(self._spec, num_blocks, block_size)

    def read_kv(
        self, kv_cache: Any, block_table: Sequence[int], num_tokens: int
    ) -> tuple[tuple[FloatArray, ...], tuple[FloatArray, ...]]:
        return read_kv(check_kv(kv_cache), block_table, num_tokens)

    def write_kv(
        self,
        kv_cache: Any,
        block_table: Sequence[int],
        start: int,
        keys: Sequence[Any],
        values: Sequence[Any],
    ) -> None:
        write_kv(check_kv(kv_cache), block_table, start, keys, values)
