"""Small, correct adapters of the ports whose suites the kit owns, used to validate them."""

from __future__ import annotations

from collections.abc import Sequence

from portfolio_core.ports import InvalidInputError


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255; 256 = BOS, 257 = EOS."""

    BOS = 256
    EOS = 257

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [self.BOS, *ids] if add_special_tokens else ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        out = bytearray()
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise InvalidInputError(f"token id {i} is outside the vocabulary", field="ids")
            if i < 256:
                out.append(i)
            elif not skip_special_tokens:
                out.extend(b"<|bos|>" if i == self.BOS else b"<|eos|>")
        return out.decode("utf-8", errors="replace")

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
        return 258
