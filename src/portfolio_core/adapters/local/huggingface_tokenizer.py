"""A Tokenizer over a Hugging Face ``tokenizers.Tokenizer`` (``tokenizer.json`` or GGUF).

Needs the ``llm`` extra. Nothing is downloaded: build the tokenizer in memory (train one, as
the tests do), load a ``tokenizer.json`` from disk, or build it from the vocabulary, merges
and special tokens stored in a GGUF model file (`HuggingFaceTokenizer.from_gguf`;
byte-level BPE, the GPT-2 family). A GGUF tokenizer also carries the file's chat template,
rendered by `HuggingFaceTokenizer.render_chat` with ``jinja2`` in a sandbox, and ends
generations on the file's end-of-sequence and end-of-turn tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters.local._special_tokens import SpecialTokens
from portfolio_core.ports.errors import InvalidInputError, NotFoundError, UnsupportedError

if TYPE_CHECKING:
    import tokenizers

__all__ = ["HuggingFaceTokenizer", "HuggingFaceTokenizerConfig"]

#: GGUF pre-tokenizer names understood, and whether digits are split one by one first
_PRE_TOKENIZERS = {"default": False, "gpt2": False, "smollm": True}
#: GGUF token type of control (special) tokens
_CONTROL = 3

#: EOS names tried, in order, when none is configured
_COMMON_EOS = ("<|eos|>", "</s>", "<|endoftext|>", "<eos>", "<|end_of_text|>", "<|im_end|>")
_COMMON_BOS = ("<|bos|>", "<s>", "<bos>", "<|begin_of_text|>")


class HuggingFaceTokenizerConfig(BaseModel):
    """Configuration of `HuggingFaceTokenizer`: a ``tokenizer.json`` and its specials.

    ``path`` may also name a GGUF model file (a ``.gguf`` path or
    ``package:<package>/<file>``): the tokenizer, chat template and stop tokens then come
    from the file, and ``eos_tokens`` / ``bos_token`` override the file's choice.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    #: tokens that end a generation; the first is ``eos_token_id`` (default: a common name)
    eos_tokens: list[str] = Field(default_factory=list)
    #: the beginning-of-sequence token (default: a common name if present, else none)
    bos_token: str | None = None


class HuggingFaceTokenizer(SpecialTokens):
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
        chat_template: str | None = None,
    ) -> None:
        import tokenizers as hf

        self.chat_template = chat_template
        self._template: Any = None

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
    def from_gguf(
        cls, source: str, *, eos_tokens: Sequence[str] = (), bos_token: str | None = None
    ) -> Self:
        """The tokenizer stored in a GGUF file (path or ``package:<package>/<file>``).

        Raises NotFoundError for a missing file, InvalidInputError for a tokenizer model or
        pre-tokenizer other than byte-level BPE (``gpt2``; pre-tokenizers ``default``,
        ``gpt2``, ``smollm``), naming it.
        """
        import tokenizers as hf

        from portfolio_core.adapters.local._gguf import open_gguf

        model = open_gguf(source)
        name = model.path.name
        kind = model.meta("tokenizer.ggml.model")
        if kind != "gpt2":
            raise InvalidInputError(
                f"{name}: tokenizer model {kind!r} is not supported (supported: 'gpt2', "
                "byte-level BPE)",
                field="path",
            )
        pre = str(model.meta("tokenizer.ggml.pre", "default"))
        if pre not in _PRE_TOKENIZERS:
            raise InvalidInputError(
                f"{name}: pre-tokenizer {pre!r} is not supported "
                f"(supported: {', '.join(sorted(_PRE_TOKENIZERS))})",
                field="path",
            )
        tokens: list[str] = list(model.meta("tokenizer.ggml.tokens", []))
        merges = [tuple(m.split(" ", 1)) for m in model.meta("tokenizer.ggml.merges", [])]
        types: list[int] = list(model.meta("tokenizer.ggml.token_type", [1] * len(tokens)))
        vocab = {tok: i for i, tok in enumerate(tokens)}
        tokenizer = hf.Tokenizer(hf.models.BPE(vocab, merges, fuse_unk=False))
        byte_level = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        if _PRE_TOKENIZERS[pre]:
            tokenizer.pre_tokenizer = hf.pre_tokenizers.Sequence(
                [hf.pre_tokenizers.Digits(individual_digits=True), byte_level]
            )
        else:
            tokenizer.pre_tokenizer = byte_level
        tokenizer.decoder = hf.decoders.ByteLevel()
        tokenizer.add_special_tokens(
            [
                hf.AddedToken(tok, special=True, normalized=False)
                for tok, kind_id in zip(tokens, types, strict=True)
                if kind_id == _CONTROL
            ]
        )

        def token_name(key: str) -> str | None:
            index = model.meta(f"tokenizer.ggml.{key}_token_id")
            return tokens[int(index)] if index is not None and 0 <= index < len(tokens) else None

        if not eos_tokens:
            named = (token_name("eos"), token_name("eot"), token_name("eom"))
            eos_tokens = list(dict.fromkeys(t for t in named if t is not None))
        if bos_token is None and model.meta("tokenizer.ggml.add_bos_token", False):
            bos_token = token_name("bos")
        instance = cls(
            tokenizer,
            eos_tokens=eos_tokens,
            bos_token=bos_token,
            chat_template=model.meta("tokenizer.chat_template"),
        )
        if bos_token is None:
            instance._bos = None  # the file says: no BOS token is prepended
        return instance

    @classmethod
    def from_config(cls, config: HuggingFaceTokenizerConfig) -> Self:
        if config.path.startswith("package:") or config.path.endswith(".gguf"):
            return cls.from_gguf(
                config.path, eos_tokens=config.eos_tokens, bos_token=config.bos_token
            )
        return cls.from_file(config.path, eos_tokens=config.eos_tokens, bos_token=config.bos_token)

    def render_chat(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True
    ) -> str:
        """The prompt text of ``messages`` (``role``/``content`` mappings) by the chat
        template, rendered in a sandboxed ``jinja2`` environment as ``transformers`` does.

        Raises UnsupportedError when the tokenizer has no chat template, InvalidInputError
        when the template fails (a template may raise on a conversation it does not accept).
        """
        if self.chat_template is None:
            raise UnsupportedError("this tokenizer has no chat template", capability="chat")
        if self._template is None:
            self._template = _compile_template(self.chat_template)
        try:
            return str(
                self._template.render(
                    messages=[dict(m) for m in messages],
                    add_generation_prompt=add_generation_prompt,
                    bos_token=self._token_text(self._bos),
                    eos_token=self._token_text(self._eos),
                )
            )
        except Exception as exc:  # jinja2 errors and the template's raise_exception
            raise InvalidInputError(f"the chat template failed: {exc}", field="messages") from exc

    def _token_text(self, token_id: int | None) -> str:
        if token_id is None:
            return ""
        return str(self._plain.id_to_token(token_id) or "")

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
    def vocab_size(self) -> int:
        return self._vocab_size

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids


def _compile_template(source: str) -> Any:
    """A chat template compiled the way ``transformers`` does: sandboxed, immutable,
    ``trim_blocks``/``lstrip_blocks``, with ``raise_exception`` available."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise InvalidInputError(f"the chat template does not compile: {exc}", field="path") from exc
