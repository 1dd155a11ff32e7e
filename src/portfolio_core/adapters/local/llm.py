"""An LLM that generates in process, over the GenerationEngine and Tokenizer ports.

``complete`` renders the conversation with a simple chat template, encodes it with the
tokenizer, submits it to the engine and awaits its generation. One driver task per adapter
calls ``engine.step()`` while any of its requests is pending, yielding to the event loop
between steps, so concurrent ``complete`` calls are batched by the engine (continuous
batching) instead of running one after another. A cancelled call aborts its request.

The adapter should own its engine: generations finished by ``step()`` for requests this
adapter did not submit are dropped. Sampling is whatever the engine does (greedy in the
reference engine); ``temperature`` and ``seed`` are not passed on (the port has neither).
Tool calling and incremental streaming are not supported (``stream`` raises
UnsupportedError).

Chat template (``{role}`` markers are plain text, so user input cannot forge them)::

    <|system|>\\n...\\n<|user|>\\n...\\n<|assistant|>\\n
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

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
    """Manifest config of :class:`LocalLLM` (``uses: {engine: ..., tokenizer: ...}``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "local"
    agent_id: str = "local-llm"
    """Agent id passed to the engine (engines may key prefix caches by it)."""
    max_steps: int = Field(default=100_000, ge=1)
    """Bound on engine steps per driver run; pending requests fail beyond it."""


class LocalLLM:
    """In-process generation; see the module docstring."""

    config_model: ClassVar[type[BaseModel]] = LocalLLMConfig
    capabilities: ClassVar[frozenset[str]] = declare(LLMCapability.OFFLINE)

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

    @classmethod
    def from_config(
        cls, config: LocalLLMConfig, *, engine: GenerationEngine, tokenizer: Tokenizer
    ) -> Self:
        """Build from a manifest; the engine and tokenizer are other adapters."""
        return cls(
            engine=engine,
            tokenizer=tokenizer,
            model=config.model,
            agent_id=config.agent_id,
            max_steps=config.max_steps,
        )

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
        if not messages:
            raise InvalidInputError("the conversation is empty", field="messages")
        if opts.max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        if opts.temperature < 0:
            raise InvalidInputError("temperature must not be negative", field="temperature")
        if opts.tools:
            require(self, LLMCapability.TOOLS, "tool calling")
        prompt = self._tokenizer.encode(render_chat(messages), add_special_tokens=True)
        uid = self._engine.submit(self.agent_id, prompt, None, opts.max_tokens)
        future: asyncio.Future[CompletedGeneration] = asyncio.get_running_loop().create_future()
        self._waiting[uid] = future
        if self._driver is None or self._driver.done():
            self._driver = asyncio.create_task(self._drive())
        try:
            generation = await future
        except asyncio.CancelledError:
            if self._waiting.pop(uid, None) is not None:
                self._engine.abort(uid)
            raise
        if generation.finish_reason == "abort":
            raise UnavailableError("the local generation was aborted", port="LLM")
        if generation.tokens:
            text = self._tokenizer.decode(
                [t for t in generation.tokens if t not in self._tokenizer.eos_token_ids]
            )
        else:
            text = generation.text
        finish = str(generation.finish_reason)
        for stop in opts.stop:
            cut = text.find(stop) if stop else -1
            if cut >= 0:
                text, finish = text[:cut], "stop"
        usage = Usage(len(prompt), generation.token_count)
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
                await asyncio.sleep(0)
        except PortError as exc:
            self._fail_all(exc)
        except Exception as exc:
            self._fail_all(UnavailableError(f"the engine failed: {type(exc).__name__}: {exc}"))

    def _fail_all(self, exc: Exception) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(exc)
        self._waiting.clear()

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        """Not supported: raises UnsupportedError (the capability is not declared)."""
        require(self, LLMCapability.STREAMING, "streaming")
        yield CompletionChunk("")  # pragma: no cover - not reached: require raises
