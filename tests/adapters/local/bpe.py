"""A small byte-level BPE trained in memory, shared by the tokenizer tests."""

from __future__ import annotations

import tokenizers

CORPUS = [
    "hello world, the quick brown fox jumps over the lazy dog",
    "héllo wörld — naïve café; 你好\uff0c世界 🙂 emoji 🚀",
    "def f(x):\n    return x * 2  # code\n",
] * 40


def train_bpe() -> tokenizers.Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|bos|>", "<|eos|>", "<|pad|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return tok
