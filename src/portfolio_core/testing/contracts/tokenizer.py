"""Contract suite of the Tokenizer port (sync, stateless)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.tokenizer import Tokenizer
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.machines import property_settings
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite

__all__ = ["TokenizerContract"]

#: text a tokenizer must round-trip: any unicode, surrogates excluded (not encodable)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)


class TokenizerContract(ContractSuite[Tokenizer]):
    """The promises of [Tokenizer][portfolio_core.ports.Tokenizer] (see docs/ports/tokenizer.md)."""

    port_key = "tokenizer"

    @clause("tokenizer.round_trip", "decode(encode(text)) == text for every string")
    def test_round_trip(self, adapter: Tokenizer, kit_settings: KitSettings) -> None:
        @property_settings(kit_settings)
        @given(text=texts)
        def round_trip(text: str) -> None:
            ids = adapter.encode(text)
            assert adapter.decode(ids) == text, f"round trip of {text!r} gave another text"

        round_trip()

    @clause("tokenizer.round_trip.fixed", "round trip of ASCII, accents, CJK, emoji, newlines")
    @pytest.mark.parametrize(
        "text", ["", "hello world", "naïve café", "日本語のテキスト", "emoji 🎉👍🏽", "a\nb\tc\r\n"]
    )
    def test_round_trip_examples(self, adapter: Tokenizer, text: str) -> None:
        assert adapter.decode(adapter.encode(text)) == text

    @clause("tokenizer.ids.in_vocab", "every id encode returns is in range(vocab_size)")
    def test_ids_in_vocabulary(self, adapter: Tokenizer, kit_settings: KitSettings) -> None:
        size = adapter.vocab_size
        assert size > 0

        @property_settings(kit_settings)
        @given(text=texts)
        def in_vocab(text: str) -> None:
            ids = adapter.encode(text)
            assert all(isinstance(i, int) and 0 <= i < size for i in ids), ids

        in_vocab()

    @clause("tokenizer.eos.in_set", "eos_token_id is one of eos_token_ids, and in the vocabulary")
    def test_eos_in_eos_set(self, adapter: Tokenizer) -> None:
        assert adapter.eos_token_id in adapter.eos_token_ids
        assert all(0 <= i < adapter.vocab_size for i in adapter.eos_token_ids)
        bos = adapter.bos_token_id
        assert bos is None or 0 <= bos < adapter.vocab_size

    @clause(
        "tokenizer.special.not_forged",
        "text that looks like a special token is encoded as plain text, never as the special id",
    )
    @pytest.mark.parametrize("text", ["<|eos|>", "</s>", "<|endoftext|>", "<eos>", "<s>"])
    def test_user_text_cannot_forge_special_tokens(self, adapter: Tokenizer, text: str) -> None:
        ids = adapter.encode(text)
        specials = set(adapter.eos_token_ids)
        if adapter.bos_token_id is not None:
            specials.add(adapter.bos_token_id)
        forged = specials.intersection(ids)
        assert not forged, f"encode({text!r}) produced special ids {sorted(forged)}"
        assert adapter.decode(ids) == text

    @clause("tokenizer.bos.prepended", "add_special_tokens prepends the BOS id when there is one")
    def test_add_special_tokens(self, adapter: Tokenizer) -> None:
        plain = adapter.encode("hi")
        special = adapter.encode("hi", add_special_tokens=True)
        if adapter.bos_token_id is None:
            assert special == plain
        else:
            assert special == [adapter.bos_token_id, *plain]

    @clause("tokenizer.decode.skips_specials", "decode drops special ids by default")
    def test_decode_skips_special_tokens(self, adapter: Tokenizer) -> None:
        ids = [*adapter.encode("done"), adapter.eos_token_id]
        assert adapter.decode(ids) == "done"

    @clause(
        "tokenizer.decode.rejects_out_of_vocab",
        "decode of an id outside the vocabulary raises InvalidInputError",
    )
    @pytest.mark.parametrize("offset", [0, 1, 10_000])
    def test_decode_rejects_unknown_ids(self, adapter: Tokenizer, offset: int) -> None:
        with pytest.raises(InvalidInputError):
            adapter.decode([adapter.vocab_size + offset])
        with pytest.raises(InvalidInputError):
            adapter.decode([-1 - offset])

    @clause("tokenizer.deterministic", "encode is a pure function: the same text, the same ids")
    def test_deterministic(self, adapter: Tokenizer) -> None:
        text = "The quick brown fox — 狐 🦊"
        assert adapter.encode(text) == adapter.encode(text)

    @clause(
        "tokenizer.decode.partial_utf8", "decode of a partial multi-byte sequence does not raise"
    )
    def test_decode_of_prefix_does_not_raise(self, adapter: Tokenizer) -> None:
        ids = adapter.encode("🎉é")
        for cut in range(len(ids) + 1):
            assert isinstance(adapter.decode(ids[:cut]), str)
