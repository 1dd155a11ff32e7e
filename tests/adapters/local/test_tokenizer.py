"""The byte-level and Hugging Face tokenizers, and the streaming detokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer, ByteTokenizerConfig
from portfolio_core.adapters.local.detokenizer import StreamingDetokenizer
from portfolio_core.ports import InvalidInputError, NotFoundError, Tokenizer

tokenizers = pytest.importorskip("tokenizers")

from portfolio_core.adapters.local.huggingface_tokenizer import (  # noqa: E402
    HuggingFaceTokenizer,
    HuggingFaceTokenizerConfig,
)
from tests.adapters.local.bpe import train_bpe  # noqa: E402


@pytest.fixture(scope="module")
def bpe() -> tokenizers.Tokenizer:
    return train_bpe()


@pytest.fixture(params=["byte", "huggingface"])
def tokenizer(request: pytest.FixtureRequest, bpe: tokenizers.Tokenizer) -> Tokenizer:
    if request.param == "byte":
        return ByteTokenizer()
    return HuggingFaceTokenizer(bpe, eos_tokens=["<|eos|>", "<|im_end|>"])


TEXTS = ["", "hello", "héllo wörld", "你好 🙂", "a<|eos|>b", "line\nbreak\ttab", "\x00\x7f"]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tokenizer: Tokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_round_trip_any_text(text: str) -> None:
    byte = ByteTokenizer()
    assert byte.decode(byte.encode(text)) == text
    hf = HuggingFaceTokenizer(_BPE, eos_tokens=["<|eos|>"])
    assert hf.decode(hf.encode(text)) == text


_BPE = train_bpe()


def test_special_token_text_is_plain_text_by_default(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("say <|eos|> now")
    assert not set(ids) & tokenizer.eos_token_ids
    assert tokenizer.decode(ids) == "say <|eos|> now"


def test_parse_special_opt_in() -> None:
    byte = ByteTokenizer()
    assert byte.encode("a<|eos|>", parse_special=True) == [97, byte.eos_token_id]
    hf = HuggingFaceTokenizer(_BPE, eos_tokens=["<|eos|>"])
    assert hf.eos_token_id in hf.encode("a<|eos|>", parse_special=True)


def test_eos_bos_vocab(tokenizer: Tokenizer) -> None:
    assert tokenizer.eos_token_id in tokenizer.eos_token_ids
    assert tokenizer.bos_token_id is not None
    assert tokenizer.encode("x", add_special_tokens=True)[0] == tokenizer.bos_token_id
    assert tokenizer.encode("x", add_special_tokens=True)[1:] == tokenizer.encode("x")
    specials = [tokenizer.bos_token_id, tokenizer.eos_token_id]
    assert tokenizer.decode([*tokenizer.encode("hi"), *specials]) == "hi"
    assert "<|eos|>" in tokenizer.decode(specials, skip_special_tokens=False)


def test_byte_tokenizer_layout() -> None:
    tok = ByteTokenizer.from_config(ByteTokenizerConfig(extra_eos_tokens=["<|end|>"]))
    assert tok.vocab_size == 260
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (256, 257, 258)
    assert tok.eos_token_ids == {257, 259}
    assert tok.encode("é") == [0xC3, 0xA9]
    with pytest.raises(InvalidInputError):
        ByteTokenizer(eos_token="<|bos|>")


def test_huggingface_eos_set_and_errors(bpe: tokenizers.Tokenizer) -> None:
    tok = HuggingFaceTokenizer(bpe, eos_tokens=["<|eos|>", "<|im_end|>"])
    assert tok.eos_token_ids == {bpe.token_to_id("<|eos|>"), bpe.token_to_id("<|im_end|>")}
    assert HuggingFaceTokenizer(bpe).eos_token_id == bpe.token_to_id("<|eos|>")
    with pytest.raises(InvalidInputError):
        HuggingFaceTokenizer(bpe, eos_tokens=["<nope>"])
    with pytest.raises(InvalidInputError):
        HuggingFaceTokenizer(bpe, bos_token="<nope>")


def test_huggingface_from_config(tmp_path: Path, bpe: tokenizers.Tokenizer) -> None:
    path = tmp_path / "tokenizer.json"
    bpe.save(str(path))
    tok = HuggingFaceTokenizer.from_config(
        HuggingFaceTokenizerConfig(path=str(path), eos_tokens=["<|im_end|>"])
    )
    assert tok.eos_token_id == bpe.token_to_id("<|im_end|>")
    assert tok.decode(tok.encode("hello")) == "hello"
    with pytest.raises(NotFoundError):
        HuggingFaceTokenizer.from_file(tmp_path / "missing.json")


@pytest.mark.parametrize("bad", [-1, 10_000])
def test_decode_rejects_ids_outside_vocabulary(tokenizer: Tokenizer, bad: int) -> None:
    with pytest.raises(InvalidInputError):
        tokenizer.decode([bad])


def test_byte_tokenizer_rejects_lone_surrogates() -> None:
    with pytest.raises(InvalidInputError):
        ByteTokenizer().encode("\ud800")


def test_detokenizer_holds_back_partial_utf8() -> None:
    tok = ByteTokenizer()
    detok = StreamingDetokenizer(tok)
    ids = tok.encode("é🙂")
    deltas = [detok.add(i) for i in ids]
    assert deltas == ["", "é", "", "", "", "🙂"]
    assert detok.finish() == ""
    assert detok.text == "é🙂"


def test_detokenizer_flushes_incomplete_tail() -> None:
    tok = ByteTokenizer()
    detok = StreamingDetokenizer(tok)
    assert detok.extend([104, 0xF0, 0x9F]) == "h"
    assert detok.finish() == "\ufffd"
    assert detok.finish() == ""


@settings(max_examples=40, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=30))
def test_detokenizer_deltas_concatenate_to_decode(text: str) -> None:
    for tok in (ByteTokenizer(), HuggingFaceTokenizer(_BPE, eos_tokens=["<|eos|>"])):
        ids = tok.encode(text)
        detok = StreamingDetokenizer(tok)
        deltas = [detok.add(i) for i in ids]
        assert all("\ufffd" not in d for d in deltas)
        assert "".join(deltas) + detok.finish() == tok.decode(ids) == text


def test_detokenizer_multi_token_character_in_bpe() -> None:
    tok = HuggingFaceTokenizer(_BPE, eos_tokens=["<|eos|>"])
    text = "🚀🙂 你好"
    ids = tok.encode(text)
    detok = StreamingDetokenizer(tok)
    out = [detok.add(i) for i in ids]
    assert "".join(out) == text
    assert all("\ufffd" not in d for d in out)


def test_satisfies_port(tokenizer: Tokenizer) -> None:
    assert isinstance(tokenizer, Tokenizer)
