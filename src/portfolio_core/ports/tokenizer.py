"""Tokenizer: text to token ids and back (sync, in process).

Contract
--------
* ``decode(encode(text)) == text`` for every string (round trip), with
  ``add_special_tokens=False``.
* Text in user input that looks like a special token (``"<|eos|>"``) is encoded as plain
  text by default, never as the special id: user input cannot forge control tokens.
* ``eos_token_id`` is in ``eos_token_ids``; every id ``encode`` returns is ``< vocab_size``.
* ``decode`` of an id outside ``range(vocab_size)`` raises
  [InvalidInputError][portfolio_core.ports.errors.InvalidInputError].
* Pure functions of their arguments: thread safe and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Tokenizer"]


@runtime_checkable
class Tokenizer(Protocol):
    """Maps text to ids and back; see the module docstring."""

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; with ``add_special_tokens`` a BOS id is prepended if any."""
        ...

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """The text of ``ids``; invalid UTF-8 from a partial sequence is replaced."""
        ...

    @property
    def eos_token_id(self) -> int:
        """The primary end-of-sequence id."""
        ...

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Every id that ends a generation."""
        ...

    @property
    def bos_token_id(self) -> int | None:
        """The beginning-of-sequence id, if the vocabulary has one."""
        ...

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        ...
