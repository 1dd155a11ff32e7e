"""Reading Llama-family GGUF files for the local backends (private; needs the ``llm`` extra).

`open_gguf` checks a file before anything is dequantized: its architecture must be
one of `ARCHITECTURES` and every tensor one of `TENSOR_TYPES`; anything else is
an [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] naming what is not supported.
Tensors are dequantized to float32 by the ``gguf`` package, one at a time, on request; the
header is parsed here (see `_Header`).

A weights source is a file path or a package resource, ``package:<package>/<file>``: the
package is located without being imported (a model package's ``__init__`` may import things
that are not installed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from portfolio_core.ports.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from portfolio_core.adapters.local._numpy_ops import FloatArray

__all__ = ["ARCHITECTURES", "TENSOR_TYPES", "GGUFModel", "open_gguf", "resolve_source"]

#: architectures whose tensors and metadata this loader understands
ARCHITECTURES = ("llama",)
#: tensor types that can be dequantized here
TENSOR_TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_1")
PACKAGE_PREFIX = "package:"


def resolve_source(source: str) -> Path:
    """The file a weights source names; NotFoundError when it does not exist."""
    if source.startswith(PACKAGE_PREFIX):
        package, _, inner = source[len(PACKAGE_PREFIX) :].partition("/")
        if not package or not inner:
            raise InvalidInputError(
                f"a package resource reads 'package:<package>/<file>', got {source!r}",
                field="weights",
            )
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise NotFoundError(
                f"package {package!r} is not installed (weights {source!r})", key=source
            )
        for location in spec.submodule_search_locations:
            candidate = Path(location) / inner
            if candidate.is_file():
                return candidate
        raise NotFoundError(f"package {package!r} has no file {inner!r}", key=source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise NotFoundError(f"no weights file at {source!r}", key=source)
    return path


@dataclass(frozen=True, eq=False)
class GGUFModel:
    """Hyperparameters, tokenizer metadata and lazily dequantized tensors of a GGUF file."""

    path: Path
    architecture: str
    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    context_length: int
    rope_theta: float
    norm_eps: float
    #: a hash of the metadata and the tensor table: equal for files holding the same model
    digest: str
    metadata: dict[str, Any] = field(repr=False)
    _tensors: dict[str, Any] = field(repr=False)
    _fields: dict[str, Any] = field(repr=False)

    def meta(self, key: str, default: Any = None) -> Any:
        """A metadata value (``tokenizer.ggml.tokens`` included), or ``default``."""
        return self._fields.get(key, default)

    def has(self, name: str) -> bool:
        return name in self._tensors

    def tensor(self, name: str) -> FloatArray:
        """A tensor dequantized to float32, in PyTorch layout (``(out, in)`` for matrices)."""
        from gguf.constants import GGMLQuantizationType
        from gguf.quants import dequantize

        try:
            info = self._tensors[name]
        except KeyError:
            raise InvalidInputError(
                f"{self.path.name}: tensor {name!r} is missing", field="weights"
            ) from None
        shape = tuple(reversed(info.shape))  # row-major: outermost dimension first
        qtype = GGMLQuantizationType(info.type_id)
        raw = np.asarray(info.data)
        if qtype == GGMLQuantizationType.F32:
            out: FloatArray = raw.view(np.float32).reshape(shape).copy()
        elif qtype == GGMLQuantizationType.F16:
            out = raw.view(np.float16).astype(np.float32).reshape(shape)
        else:
            rows = raw.reshape(*shape[:-1], -1)
            out = np.asarray(dequantize(rows, qtype), dtype=np.float32).reshape(shape)
        return out


_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True, slots=True)
class _TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF order: innermost dimension first
    type_id: int
    data: Any  # the raw bytes, a read-only uint8 view of the mapped file


class _Header:
    """The key/value metadata and tensor table of a GGUF v2/v3 file.

    Parsed here with ``struct`` rather than ``gguf.GGUFReader``: the reader builds a
    memory-mapped view per metadata string, which takes seconds for a 49,152-token
    vocabulary; this parse takes a fraction of that. Tensor data stays memory-mapped.
    """

    def __init__(self, path: Path) -> None:
        self.buf = np.memmap(path, dtype=np.uint8, mode="r")
        self.mem = np.asarray(self.buf).data
        self.pos = 4
        if bytes(self.mem[:4]) != b"GGUF":
            raise ValueError("bad magic number")
        version = self._scalar("<I")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported")
        n_tensors, n_fields = self._scalar("<Q"), self._scalar("<Q")
        self.fields: dict[str, Any] = {}
        for _ in range(n_fields):
            key = self._string()
            self.fields[key] = self._value(self._scalar("<I"))
        infos = []
        for _ in range(n_tensors):
            name = self._string()
            dims = tuple(self._scalar("<Q") for _ in range(self._scalar("<I")))
            infos.append((name, dims, self._scalar("<I"), self._scalar("<Q")))
        align = int(self.fields.get("general.alignment", 32))
        start = -(-self.pos // align) * align
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        self.tensors: dict[str, _TensorInfo] = {}
        for name, dims, type_id, offset in infos:
            count = int(np.prod(dims))
            try:
                block, size = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
            except (KeyError, ValueError):
                block, size = 1, 0  # unknown: refused by name later, never read
            begin = start + offset
            self.tensors[name] = _TensorInfo(
                name, dims, type_id, self.buf[begin : begin + count // block * size]
            )

    def _scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.mem, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def _string(self) -> str:
        n = self._scalar("<Q")
        text = bytes(self.mem[self.pos : self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return text

    def _value(self, type_id: int) -> Any:
        if type_id == _STRING:
            return self._string()
        if type_id == _ARRAY:
            item, count = self._scalar("<I"), self._scalar("<Q")
            if item in _SCALARS and item != 7:
                dtype = np.dtype(_SCALARS[item])
                arr = np.frombuffer(self.mem, dtype, count, self.pos)
                self.pos += count * dtype.itemsize
                return arr.tolist()
            return [self._value(item) for _ in range(count)]
        if type_id not in _SCALARS:
            raise ValueError(f"unknown metadata type {type_id}")
        return self._scalar(_SCALARS[type_id])


def open_gguf(source: str) -> GGUFModel:
    """Open and check a GGUF file (see the module docstring for the errors)."""
    try:
        from gguf.constants import GGMLQuantizationType
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise InvalidInputError(
            "reading GGUF weights needs the gguf package (pip install 'portfolio-core[llm]')",
            field="weights",
        ) from exc
    path = resolve_source(source)
    try:
        header = _Header(path)
    except (ValueError, OSError, struct.error, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"{path.name} is not a readable GGUF file: {exc}", field="weights"
        ) from exc
    fields = header.fields
    arch = str(fields.get("general.architecture", ""))
    if arch not in ARCHITECTURES:
        raise InvalidInputError(
            f"{path.name}: architecture {arch!r} is not supported "
            f"(supported: {', '.join(ARCHITECTURES)})",
            field="weights",
        )
    tensors = header.tensors
    for t in tensors.values():
        try:
            type_name = GGMLQuantizationType(t.type_id).name
        except ValueError:
            type_name = f"#{t.type_id}"
        if type_name not in TENSOR_TYPES:
            raise InvalidInputError(
                f"{path.name}: tensor {t.name!r} has type {type_name}, which is not "
                f"supported (supported: {', '.join(TENSOR_TYPES)})",
                field="weights",
            )

    def need(key: str) -> Any:
        value = fields.get(f"{arch}.{key}")
        if value is None:
            raise InvalidInputError(
                f"{path.name}: metadata {arch}.{key} is missing", field="weights"
            )
        return value

    d_model = int(need("embedding_length"))
    n_heads = int(need("attention.head_count"))
    n_kv_heads = int(fields.get(f"{arch}.attention.head_count_kv", n_heads))
    head_dim = d_model // n_heads
    rope_dims = int(fields.get(f"{arch}.rope.dimension_count", head_dim))
    if rope_dims != head_dim:
        raise InvalidInputError(
            f"{path.name}: rotary embeddings on {rope_dims} of {head_dim} head dimensions "
            "(partial rotary) are not supported",
            field="weights",
        )
    scaling = fields.get(f"{arch}.rope.scaling.type", "none")
    if scaling not in ("none", None):
        raise InvalidInputError(
            f"{path.name}: RoPE scaling {scaling!r} is not supported", field="weights"
        )
    embed = tensors.get("token_embd.weight")
    if embed is None:
        raise InvalidInputError(
            f"{path.name}: tensor 'token_embd.weight' is missing", field="weights"
        )
    vocab = int(fields.get(f"{arch}.vocab_size", int(embed.shape[-1])))
    metadata = {k: v for k, v in fields.items() if k not in _BULKY}
    h = hashlib.sha256()
    for key in sorted(metadata):
        h.update(f"{key}={metadata[key]!r};".encode())
    for t in tensors.values():
        h.update(f"{t.name}:{t.type_id}:{list(t.shape)};".encode())
        # the tensor bytes themselves: a strided sample keeps this fast on large files
        h.update(np.ascontiguousarray(t.data[:: max(1, len(t.data) // 4096)]).tobytes())
    return GGUFModel(
        path=path,
        architecture=arch,
        name=str(fields.get("general.name", path.stem)),
        n_layers=int(need("block_count")),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        d_ff=int(need("feed_forward_length")),
        vocab_size=vocab,
        context_length=int(need("context_length")),
        rope_theta=float(fields.get(f"{arch}.rope.freq_base", 10000.0)),
        norm_eps=float(fields.get(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        digest=h.hexdigest()[:16],
        metadata=metadata,
        _tensors=tensors,
        _fields=fields,
    )


#: metadata too large to copy eagerly; the tokenizer reads it from the file itself
_BULKY = frozenset({"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"})
