"""The special token ids both local tokenizers expose the same way (private)."""

from __future__ import annotations

__all__ = ["SpecialTokens"]


class SpecialTokens:
    """Base of a tokenizer that sets ``_eos`` (the id that ends a generation),
    ``_eos_ids`` (every id that does) and ``_bos`` (the id that starts a text, or None)."""

    _eos: int
    _eos_ids: frozenset[int]
    _bos: int | None

    @property
    def eos_token_id(self) -> int:
        return self._eos

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos_ids

    @property
    def bos_token_id(self) -> int | None:
        return self._bos
