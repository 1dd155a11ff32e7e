"""An LLM that generates in process, over the GenerationEngine and Tokenizer ports.

``complete`` renders the conversation with a simple chat template, encodes it with the
tokenizer, submits it to the engine and awaits its generation. One driver task per adapter
calls ``engine.step()`` while any of its requests is pending, yielding to the event loop
between steps, so concurrent ``complete`` calls are batched by the engine (continuous
batching) instead of running one after another. A cancelled call aborts its request.

The adapter should own its engine: generations finished by ``step()`` for requests this
adapter did not submit are dropped. ``temperature``, ``top_p``, ``top_k`` and ``seed`` are
passed to the engine as [Sampling][portfolio_core.ports.Sampling] (greedy by default).
Tool calling is not supported. Streaming is offered when the engine can report the tokens an
unfinished request has generated so far (an ``output_tokens(uid)`` method, as the local
engine has; not part of the port): the instance then declares ``LLMCapability.STREAMING``
and yields text after each engine step, holding back a partial UTF-8 character and any
text that could still become a stop sequence. Otherwise ``stream`` raises
UnsupportedError.

Chat template: when the tokenizer has one (a ``render_chat`` method and a
``chat_template``, as a tokenizer built from a GGUF file has), the conversation is rendered
by it, and only the template's own text may contain special tokens: every message content
is encoded as plain text, so user input cannot forge a turn. Otherwise a built-in template
is used (``{role}`` markers are plain text, so user input cannot forge them)::

    <|system|>\\n...\\n<|user|>\\n...\\n<|assistant|>\\n
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.llm import check_request
from portfolio_core.ports import (
    CompletedGeneration,
    Completion,
    CompletionChunk,
    CompletionOptions,
    GenerationEngine,
    InvalidInputError,
    LLMCapability,
    Message,
    PortError,
    Sampling,
    Tokenizer,
    UnavailableError,
    Usage,
    declare,
    require,
)

__all__ = ["LocalLLM", "LocalLLMConfig", "render_chat"]


def render_chat(messages: Sequence[Message]) -> str:
    """The prompt text for ``messages``: role markers, contents, then the assistant marker."""
    parts = [f"<|{m.role}|>\n{m.content}\n" for m in messages]
    parts.append("<|assistant|>\n")
    return "".join(parts)


class LocalLLMConfig(BaseModel):
    """Manifest config of `LocalLLM` (``uses: {engine: ..., tokenizer: ...}``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "local"
    agent_id: str = "local-llm"
    """Agent id passed to the engine (engines may key prefix caches by it)."""
    max_steps: int = Field(default=100_000, ge=1)
    """Bound on engine steps per driver run; pending requests fail beyond it."""


class LocalLLM:
    """In-process generation; see the module docstring."""

    config_model: ClassVar[type[BaseModel]] = LocalLLMConfig
    #: Instances over an engine with ``output_tokens`` also declare streaming.
    capabilities: frozenset[str] = declare(LLMCapability.OFFLINE)

    def __init__(
        self,
        *,
        engine: GenerationEngine,
        tokenizer: Tokenizer,
        model: str = "local",
        agent_id: str = "local-llm",
        max_steps: int = 100_000,
    ) -> None:
        self._engine = engine
        self._tokenizer = tokenizer
        self.model = model
        self.agent_id = agent_id
        self.max_steps = max_steps
        self._waiting: dict[str, asyncio.Future[CompletedGeneration]] = {}
        self._driver: asyncio.Task[None] | None = None
        self._stepped = asyncio.Event()
        progress = getattr(engine, "output_tokens", None)
        self._progress: Callable[[str], Sequence[int]] | None = (
            progress if callable(progress) else None
        )
        if self._progress is not None:
            self.capabilities = declare(LLMCapability.OFFLINE, LLMCapability.STREAMING)

    @classmethod
    def from_config(
        cls, config: LocalLLMConfig, *, engine: GenerationEngine, tokenizer: Tokenizer
    ) -> Self:
        """Build from a manifest; the engine and tokenizer are other adapters."""
        return cls(engine=engine, tokenizer=tokenizer, **config.model_dump())

    def __repr__(self) -> str:
        return f"LocalLLM(model={self.model!r}, pending={len(self._waiting)})"

    async def aclose(self) -> None:
        """Abort pending requests and stop the driver. Idempotent."""
        for uid, fut in list(self._waiting.items()):
            self._engine.abort(uid)
            if not fut.done():
                fut.set_exception(UnavailableError("the local LLM was closed", port="LLM"))
        self._waiting.clear()
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        """Generate a completion in process; usage counts prompt and generated tokens."""
        opts = opts or CompletionOptions()
        uid, prompt_len, future = self._submit(messages, opts)
        generation = await self._await(uid, future)
        return self._finish(generation, prompt_len, opts)

    def _submit(
        self, messages: Sequence[Message], opts: CompletionOptions
    ) -> tuple[str, int, asyncio.Future[CompletedGeneration]]:
        check_request(messages, opts)
        sampling = Sampling(opts.temperature, opts.top_p, opts.top_k, opts.seed)
        if opts.tools:
            require(self, LLMCapability.TOOLS, "tool calling")
        prompt = self._encode_chat(messages)
        if sampling.greedy:  # also serves engines written before the port had sampling
            uid = self._engine.submit(self.agent_id, prompt, None, opts.max_tokens)
        else:
            uid = self._engine.submit(
                self.agent_id, prompt, None, opts.max_tokens, sampling=sampling
            )
        future: asyncio.Future[CompletedGeneration] = asyncio.get_running_loop().create_future()
        self._waiting[uid] = future
        if self._driver is None or self._driver.done():
            self._driver = asyncio.create_task(self._drive())
        return uid, len(prompt), future

    def _encode_chat(self, messages: Sequence[Message]) -> list[int]:
        tokenizer = self._tokenizer
        render = getattr(tokenizer, "render_chat", None)
        if not callable(render) or getattr(tokenizer, "chat_template", None) is None:
            return tokenizer.encode(render_chat(messages), add_special_tokens=True)
        # Render with placeholders for the contents, then encode the template's text with
        # special tokens recognised and each content as plain text.
        marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
        text = str(
            render(
                [{"role": m.role, "content": mark} for m, mark in zip(messages, marks, strict=True)]
            )
        )
        pieces = re.split("(\ue000\\d+\ue001)", text)
        if pieces[1::2] != marks:
            raise InvalidInputError(
                "the chat template changes message contents; it cannot be used safely",
                field="messages",
            )
        ids: list[int] = []
        for i, piece in enumerate(pieces):
            if i % 2:
                ids.extend(tokenizer.encode(messages[i // 2].content))
            elif piece:
                ids.extend(tokenizer.encode(piece, parse_special=True))  # type: ignore[call-arg]
        return ids

    async def _await(
        self, uid: str, future: asyncio.Future[CompletedGeneration]
    ) -> CompletedGeneration:
        try:
            generation = await future
        except asyncio.CancelledError:
            if self._waiting.pop(uid, None) is not None:
                self._engine.abort(uid)
            raise
        if generation.finish_reason == "abort":
            raise UnavailableError("the local generation was aborted", port="LLM")
        return generation

    def _text(self, tokens: Sequence[int]) -> str:
        eos = self._tokenizer.eos_token_ids
        return self._tokenizer.decode([t for t in tokens if t not in eos])

    def _finish(
        self, generation: CompletedGeneration, prompt_len: int, opts: CompletionOptions
    ) -> Completion:
        text = self._text(generation.tokens) if generation.tokens else generation.text
        finish = str(generation.finish_reason)
        for stop in opts.stop:
            cut = text.find(stop) if stop else -1
            if cut >= 0:
                text, finish = text[:cut], "stop"
        usage = Usage(prompt_len, generation.token_count)
        return Completion(text, opts.model or self.model, usage, finish)

    async def _drive(self) -> None:
        steps = 0
        try:
            while self._waiting:
                if steps >= self.max_steps or not self._engine.has_unfinished():
                    self._fail_all(
                        UnavailableError(
                            f"the engine stopped before finishing {len(self._waiting)} "
                            f"request(s) after {steps} steps",
                            port="LLM",
                        )
                    )
                    return
                finished = self._engine.step()
                steps += 1
                for generation in finished:
                    future = self._waiting.pop(generation.uid, None)
                    if future is not None and not future.done():
                        future.set_result(generation)
                self._stepped.set()
                self._stepped = asyncio.Event()
                await asyncio.sleep(0)
        except PortError as exc:
            self._fail_all(exc)
        except Exception as exc:
            self._fail_all(UnavailableError(f"the engine failed: {type(exc).__name__}: {exc}"))
        finally:
            self._stepped.set()  # wake streams so they see their outcome
            self._stepped = asyncio.Event()

    def _fail_all(self, exc: Exception) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(exc)
        self._waiting.clear()

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        """Stream the completion step by step (when the engine reports progress).

        The chunks concatenate to the text ``complete`` would return; the last one carries
        ``finish_reason`` and ``usage``. Raises UnsupportedError when the engine cannot
        report progress.
        """
        require(self, LLMCapability.STREAMING, "streaming")
        progress = self._progress
        assert progress is not None  # noqa: S101  (guaranteed by the capability check)
        opts = opts or CompletionOptions()
        uid, prompt_len, future = self._submit(messages, opts)
        hold = max((len(stop) for stop in opts.stop), default=1) - 1
        sent = ""
        try:
            while not future.done():
                stepped = self._stepped
                if stepped.is_set():  # never spin on a spent event: let the driver run
                    await asyncio.sleep(0)
                    continue
                await stepped.wait()
                if future.done():
                    break
                try:
                    text = self._text(progress(uid))
                except PortError:  # finished (or aborted) since the step
                    continue
                if any(stop and stop in text for stop in opts.stop):
                    continue  # the final text will be cut there
                safe = text.rstrip("\ufffd")
                safe = safe[: max(len(sent), len(safe) - hold)]
                if len(safe) > len(sent) and safe.startswith(sent):
                    yield CompletionChunk(safe[len(sent) :])
                    sent = safe
            completion = self._finish(await self._await(uid, future), prompt_len, opts)
        except BaseException:
            if self._waiting.pop(uid, None) is not None:
                self._engine.abort(uid)
            raise
        rest = completion.text[len(sent) :] if completion.text.startswith(sent) else ""
        yield CompletionChunk(rest, completion.finish_reason, completion.usage)
