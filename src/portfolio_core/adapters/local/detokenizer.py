"""Incremental detokenization: text out as tokens arrive, never half a character.

Works over any [Tokenizer][portfolio_core.ports.Tokenizer]. Decoding a growing window of ids
and emitting only the new suffix handles both byte-level vocabularies (one UTF-8 character
split over several byte tokens) and tokenizers whose decoding of a token depends on its
left context (leading-space markers).
"""

from __future__ import annotations

from portfolio_core.ports.tokenizer import Tokenizer

__all__ = ["StreamingDetokenizer"]

_REPLACEMENT = "\ufffd"


class StreamingDetokenizer:
    """Turn a stream of token ids into a stream of text deltas.

    ``add(id)`` returns the text that became final with that id (possibly ``""``): text that
    ends in an incomplete UTF-8 sequence is held back until the character completes.
    ``finish()`` flushes whatever is held back (an incomplete tail decodes to U+FFFD). The
    concatenation of every delta equals ``tokenizer.decode(all ids)`` for tokenizers whose
    decoding is prefix-stable (every tokenizer in this package).
    """

    def __init__(self, tokenizer: Tokenizer, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        self._prefix_offset = 0  # start of the decoding window (context for the next delta)
        self._read_offset = 0  # ids before this have been emitted
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self._parts)

    @property
    def token_ids(self) -> tuple[int, ...]:
        return tuple(self._ids)

    def add(self, token_id: int) -> str:
        """Feed one id; return the newly final text."""
        self._ids.append(int(token_id))
        window = self._ids[self._prefix_offset :]
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(window)
        if len(new_text) <= len(prefix_text) or new_text.endswith(_REPLACEMENT):
            return ""  # incomplete character (or nothing visible yet): hold back
        delta = new_text[len(prefix_text) :]
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        self._parts.append(delta)
        return delta

    def extend(self, token_ids: list[int] | tuple[int, ...]) -> str:
        return "".join(self.add(t) for t in token_ids)

    def finish(self) -> str:
        """Flush held-back text (idempotent: a second call returns ``""``)."""
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        delta = new_text[len(prefix_text) :]
        self._prefix_offset = self._read_offset = len(self._ids)
        if delta:
            self._parts.append(delta)
        return delta

    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip)
