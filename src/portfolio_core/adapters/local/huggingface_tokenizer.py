"""A Tokenizer over a Hugging Face ``tokenizers.Tokenizer`` (``tokenizer.json``).

Needs the ``llm`` extra. Nothing is downloaded: build the tokenizer in memory (train one, as
the tests do) or load a ``tokenizer.json`` from disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.ports.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import tokenizers

__all__ = ["HuggingFaceTokenizer", "HuggingFaceTokenizerConfig"]

#: EOS names tried, in order, when none is configured
_COMMON_EOS = ("<|eos|>", "</s>", "<|endoftext|>", "<eos>", "<|end_of_text|>", "<|im_end|>")
_COMMON_BOS = ("<|bos|>", "<s>", "<bos>", "<|begin_of_text|>")


class HuggingFaceTokenizerConfig(BaseModel):
    """Configuration of `HuggingFaceTokenizer`: a ``tokenizer.json`` and its specials."""

    model_config = ConfigDict(extra="forbid")

    path: str
    #: tokens that end a generation; the first is ``eos_token_id`` (default: a common name)
    eos_tokens: list[str] = Field(default_factory=list)
    #: the beginning-of-sequence token (default: a common name if present, else none)
    bos_token: str | None = None


class HuggingFaceTokenizer:
    """Adapter over ``tokenizers.Tokenizer``.

    Special-token text in user input is encoded as plain text unless
    ``encode(..., parse_special=True)``. ``add_special_tokens`` prepends the BOS id (when
    there is one) and nothing else: the tokenizer's own post-processor is not applied, so
    every adapter of the port behaves the same. Round trip holds for byte-level BPE
    tokenizers without a normalizer (the usual GPT-2 style ``tokenizer.json``).
    """

    config_model: ClassVar[type[BaseModel]] = HuggingFaceTokenizerConfig

    def __init__(
        self,
        tokenizer: tokenizers.Tokenizer,
        *,
        eos_tokens: Sequence[str] = (),
        bos_token: str | None = None,
    ) -> None:
        import tokenizers as hf

        source = tokenizer.to_str()
        # two private copies: the flag that makes specials plain text is per-object state
        self._plain = hf.Tokenizer.from_str(source)
        self._plain.encode_special_tokens = True
        self._parsing = hf.Tokenizer.from_str(source)
        self._parsing.encode_special_tokens = False
        self._vocab_size = int(self._plain.get_vocab_size(with_added_tokens=True))
        names = list(eos_tokens) or [n for n in _COMMON_EOS if self._id(n) is not None][:1]
        if not names:
            raise InvalidInputError(
                "no EOS token configured and none of the common names is in the vocabulary",
                field="eos_tokens",
            )
        eos_ids = []
        for name in names:
            token_id = self._id(name)
            if token_id is None:
                raise InvalidInputError(
                    f"EOS token {name!r} is not in the vocabulary", field="eos_tokens"
                )
            eos_ids.append(token_id)
        self._eos = eos_ids[0]
        self._eos_ids = frozenset(eos_ids)
        if bos_token is not None:
            bos = self._id(bos_token)
            if bos is None:
                raise InvalidInputError(
                    f"BOS token {bos_token!r} is not in the vocabulary", field="bos_token"
                )
            self._bos: int | None = bos
        else:
            self._bos = next((i for n in _COMMON_BOS if (i := self._id(n)) is not None), None)
        self._special_ids = frozenset(
            int(i) for i, t in self._plain.get_added_tokens_decoder().items() if t.special
        )

    @classmethod
    def from_file(
        cls, path: str | Path, *, eos_tokens: Sequence[str] = (), bos_token: str | None = None
    ) -> Self:
        """Load a ``tokenizer.json``; NotFoundError if it does not exist."""
        import tokenizers as hf

        file = Path(path)
        if not file.is_file():
            raise NotFoundError(f"no tokenizer file at {str(file)!r}", key=str(file))
        try:
            tokenizer = hf.Tokenizer.from_file(str(file))
        except Exception as exc:  # the Rust side raises a bare Exception
            raise InvalidInputError(
                f"cannot load tokenizer {str(file)!r}: {exc}", field="path"
            ) from exc
        return cls(tokenizer, eos_tokens=eos_tokens, bos_token=bos_token)

    @classmethod
    def from_config(cls, config: HuggingFaceTokenizerConfig) -> Self:
        return cls.from_file(config.path, eos_tokens=config.eos_tokens, bos_token=config.bos_token)

    def __repr__(self) -> str:
        return f"HuggingFaceTokenizer(vocab_size={self._vocab_size})"

    def _id(self, name: str) -> int | None:
        token_id = self._plain.token_to_id(name)
        return None if token_id is None else int(token_id)

    # -- the port -----------------------------------------------------------------------

    def encode(
        self, text: str, *, add_special_tokens: bool = False, parse_special: bool = False
    ) -> list[int]:
        if not isinstance(text, str):
            raise InvalidInputError("text must be a str", field="text")
        tokenizer = self._parsing if parse_special else self._plain
        ids = [int(i) for i in tokenizer.encode(text, add_special_tokens=False).ids]
        if add_special_tokens and self._bos is not None:
            ids.insert(0, self._bos)
        return ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        checked = []
        for raw in ids:
            i = int(raw)
            if not 0 <= i < self._vocab_size:
                raise InvalidInputError(
                    f"token id {i} is outside the vocabulary (size {self._vocab_size})", field="ids"
                )
            checked.append(i)
        return str(self._plain.decode(checked, skip_special_tokens=skip_special_tokens))

    @property
    def eos_token_id(self) -> int:
        return self._eos

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos_ids

    @property
    def bos_token_id(self) -> int | None:
        return self._bos

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids
