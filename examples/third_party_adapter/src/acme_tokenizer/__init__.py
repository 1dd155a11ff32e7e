"""A character-level tokenizer: one id per Unicode code point, plus BOS and EOS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict

from portfolio_core.ports import InvalidInputError

__all__ = ["CharTokenizer", "CharTokenizerConfig"]

_UNICODE = 0x110000


class CharTokenizerConfig(BaseModel):
    """Manifest configuration (the tokenizer has no options)."""

    model_config = ConfigDict(extra="forbid")


class CharTokenizer:
    """Ids ``0..0x10FFFF`` are code points; ``0x110000`` is BOS, ``0x110001`` is EOS.

    User text can never produce a special id, since every character maps to its code point.
    """

    config_model: ClassVar[type[BaseModel]] = CharTokenizerConfig
    BOS = _UNICODE
    EOS = _UNICODE + 1

    @classmethod
    def from_config(cls, config: CharTokenizerConfig) -> Self:
        return cls()

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        ids = [ord(ch) for ch in text]
        return [self.BOS, *ids] if add_special_tokens else ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        out = []
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise InvalidInputError(f"id {i} is outside the vocabulary", field="ids")
            if i < _UNICODE:
                out.append(chr(i))
            elif not skip_special_tokens:
                out.append("<s>" if i == self.BOS else "</s>")
        return "".join(out)

    @property
    def eos_token_id(self) -> int:
        return self.EOS

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({self.EOS})

    @property
    def bos_token_id(self) -> int | None:
        return self.BOS

    @property
    def vocab_size(self) -> int:
        return _UNICODE + 2
