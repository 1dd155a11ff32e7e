"""The reference byte-level tokenizer: one id per UTF-8 byte, then the special tokens.

Ids ``0..255`` are the bytes themselves; special tokens (``<|bos|>``, ``<|eos|>``,
``<|pad|>`` by default, plus any extra ones configured) follow from 256. Every string
round-trips, and needs nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters.local._special_tokens import SpecialTokens
from portfolio_core.ports.errors import InvalidInputError

__all__ = ["ByteTokenizer", "ByteTokenizerConfig"]

_N_BYTES = 256


class ByteTokenizerConfig(BaseModel):
    """Configuration of `ByteTokenizer`."""

    model_config = ConfigDict(extra="forbid")

    bos_token: str = "<|bos|>"  # noqa: S105  (a special token, not a password)
    eos_token: str = "<|eos|>"  # noqa: S105  (a special token, not a password)
    pad_token: str = "<|pad|>"  # noqa: S105  (a special token, not a password)
    extra_special_tokens: list[str] = Field(default_factory=list)
    #: further special tokens that also end a generation (e.g. ``"<|end_of_turn|>"``)
    extra_eos_tokens: list[str] = Field(default_factory=list)


class ByteTokenizer(SpecialTokens, Configurable):
    """Bytes as ids, specials after them; special-token text in input stays plain text.

    ``ByteTokenizer()`` has ``vocab_size == 259``: bytes 0-255, BOS 256, EOS 257, PAD 258.
    ``encode(..., parse_special=True)`` opts in to recognising special-token text (for
    trusted templates only); by default ``"<|eos|>"`` in the text encodes as its 7 bytes.
    """

    config_model: ClassVar[type[BaseModel]] = ByteTokenizerConfig

    def __init__(
        self,
        *,
        bos_token: str = "<|bos|>",  # noqa: S107  (a special token, not a password)
        eos_token: str = "<|eos|>",  # noqa: S107  (a special token, not a password)
        pad_token: str = "<|pad|>",  # noqa: S107  (a special token, not a password)
        extra_special_tokens: Sequence[str] = (),
        extra_eos_tokens: Sequence[str] = (),
    ) -> None:
        names = [bos_token, eos_token, pad_token, *extra_special_tokens, *extra_eos_tokens]
        if len(set(names)) != len(names) or any(not n for n in names):
            raise InvalidInputError(
                "special tokens must be distinct, non-empty strings", field="special_tokens"
            )
        self._special_ids = {name: _N_BYTES + i for i, name in enumerate(names)}
        self._special_names = {i: name for name, i in self._special_ids.items()}
        self._bos: int = self._special_ids[bos_token]
        self._eos = self._special_ids[eos_token]
        self._pad = self._special_ids[pad_token]
        self._eos_ids = frozenset({self._eos, *(self._special_ids[n] for n in extra_eos_tokens)})
        # longest first, so that a special token that prefixes another never wins
        self._by_length = sorted(self._special_ids, key=len, reverse=True)

    def __repr__(self) -> str:
        return f"ByteTokenizer(vocab_size={self.vocab_size})"

    # -- the port -----------------------------------------------------------------------

    def encode(
        self, text: str, *, add_special_tokens: bool = False, parse_special: bool = False
    ) -> list[int]:
        """UTF-8 bytes of ``text`` (BOS first with ``add_special_tokens``).

        With ``parse_special`` the exact text of a special token becomes its id; without it
        (the default) user input can never produce a special id.
        """
        if not isinstance(text, str):
            raise InvalidInputError("text must be a str", field="text")
        ids = [self._bos] if add_special_tokens else []
        if not parse_special:
            ids.extend(_utf8(text))
            return ids
        i = 0
        start = 0
        while i < len(text):
            name = next((n for n in self._by_length if text.startswith(n, i)), None)
            if name is None:
                i += 1
                continue
            ids.extend(_utf8(text[start:i]))
            ids.append(self._special_ids[name])
            i += len(name)
            start = i
        ids.extend(_utf8(text[start:]))
        return ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """Text of ``ids``; bytes that are not valid UTF-8 decode to U+FFFD."""
        out: list[str] = []
        pending = bytearray()
        limit = self.vocab_size
        for raw in ids:
            i = int(raw)
            if not 0 <= i < limit:
                raise InvalidInputError(
                    f"token id {i} is outside the vocabulary (size {limit})", field="ids"
                )
            if i < _N_BYTES:
                pending.append(i)
                continue
            if pending:
                out.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
            if not skip_special_tokens:
                out.append(self._special_names[i])
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)

    @property
    def pad_token_id(self) -> int:
        return self._pad

    @property
    def vocab_size(self) -> int:
        return _N_BYTES + len(self._special_ids)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Every special token's text and id."""
        return dict(self._special_ids)

    def is_special(self, token_id: int) -> bool:
        return token_id >= _N_BYTES


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"text is not encodable as UTF-8 (lone surrogate at {exc.start})", field="text"
        ) from exc
