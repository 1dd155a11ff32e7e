"""A simulated LLM provider for tests and demos: scripted answers, latency and failures.

It speaks the LLM port exactly like a real provider would (usage on every completion,
streaming, the port's error types) but its answers come from a script: a list of responses
served in turn (the last one repeats), or a function of the conversation. A failure pattern
makes it flaky on purpose — every Nth call, or with a seeded probability — failing with a
chosen kind (``429`` with ``retry_after``, ``500``, or ``timeout``), so routers, breakers and
retries can be shown and tested without a network.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.llm import check_request
from portfolio_core.ports import (
    Completion,
    CompletionChunk,
    CompletionOptions,
    InvalidInputError,
    LLMCapability,
    Message,
    PortTimeoutError,
    RateLimitedError,
    ToolCall,
    UnavailableError,
    Usage,
    declare,
    estimate_tokens,
)

__all__ = ["FailureKind", "SimulatedLLM", "SimulatedLLMConfig", "ScriptedToolCall", "ScriptedTurn"]

FailureKind = Literal["429", "500", "timeout"]
Script = Callable[[Sequence[Message]], "str | Completion | Awaitable[str | Completion]"]


class ScriptedToolCall(BaseModel):
    """A tool call the script makes (config form of [ToolCall][portfolio_core.ports.ToolCall])."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class ScriptedTurn(BaseModel):
    """One scripted answer: text, tool calls, or both."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)


class SimulatedLLMConfig(BaseModel):
    """Manifest config of `SimulatedLLM`."""

    model_config = ConfigDict(extra="forbid")

    model: str = "scripted"
    responses: list[str | ScriptedTurn] = Field(
        default_factory=lambda: list[str | ScriptedTurn](["ok"])
    )
    cycle: bool = False
    """Start over after the last response (by default the last one repeats)."""
    echo: bool = False
    """Answer with the last user message instead of ``responses``."""
    latency: float = Field(default=0.0, ge=0.0)
    """Seconds each call takes before answering (or failing)."""
    fail_every: int | None = Field(default=None, ge=1)
    """Fail calls number N, 2N, 3N, ... (1-based)."""
    fail_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    fail_with: FailureKind = "500"
    retry_after: float | None = Field(default=1.0, ge=0.0)
    seed: int = 0
    chunk_size: int = Field(default=8, ge=1)
    """Characters per streamed chunk."""


class SimulatedLLM:
    """An LLM whose answers and failures are scripted; see the module docstring.

    Usage is estimated with [estimate_tokens][portfolio_core.ports.estimate_tokens] for the input
    and
    whitespace-separated words (at least one) for the output. Calls are counted from 1 in
    `calls`; failed calls count too. `requests` keeps every conversation seen.
    ``down = True`` makes every call (and `ping`) fail with ``fail_with``.
    """

    config_model: ClassVar[type[BaseModel]] = SimulatedLLMConfig
    capabilities: ClassVar[frozenset[str]] = declare(
        LLMCapability.STREAMING, LLMCapability.TOOLS, LLMCapability.OFFLINE
    )

    def __init__(
        self,
        responses: Sequence[str | Completion | ScriptedTurn] | Script = ("ok",),
        *,
        model: str = "scripted",
        cycle: bool = False,
        echo: bool = False,
        latency: float = 0.0,
        fail_every: int | None = None,
        fail_probability: float = 0.0,
        fail_with: FailureKind = "500",
        retry_after: float | None = 1.0,
        seed: int = 0,
        chunk_size: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if fail_every is not None and fail_every < 1:
            raise InvalidInputError("fail_every must be at least 1", field="fail_every")
        if not 0.0 <= fail_probability <= 1.0:
            raise InvalidInputError("fail_probability must be in [0, 1]", field="fail_probability")
        if fail_with not in ("429", "500", "timeout"):
            raise InvalidInputError(f"unknown failure kind {fail_with!r}", field="fail_with")
        if chunk_size < 1:
            raise InvalidInputError("chunk_size must be at least 1", field="chunk_size")
        if not callable(responses) and not responses and not echo:
            raise InvalidInputError("a script needs at least one response", field="responses")
        self._responses = responses
        self.model = model
        self.cycle = cycle
        self.echo = echo
        self.latency = latency
        self.fail_every = fail_every
        self.fail_probability = fail_probability
        self.fail_with: FailureKind = fail_with
        self.retry_after = retry_after
        self.chunk_size = chunk_size
        self.down = False
        self.calls = 0
        self.failures = 0
        self.requests: list[tuple[Message, ...]] = []
        self._answered = 0
        self._random = random.Random(seed)  # noqa: S311  (a seeded test double, not security)
        self._sleep = sleep

    @classmethod
    def from_config(cls, config: SimulatedLLMConfig, **uses: object) -> Self:
        """Build from a manifest config; takes no other adapters."""
        if uses:
            raise InvalidInputError(f"SimulatedLLM uses no adapters, got {sorted(uses)}")
        return cls(
            list(config.responses),
            model=config.model,
            cycle=config.cycle,
            echo=config.echo,
            latency=config.latency,
            fail_every=config.fail_every,
            fail_probability=config.fail_probability,
            fail_with=config.fail_with,
            retry_after=config.retry_after,
            seed=config.seed,
            chunk_size=config.chunk_size,
        )

    def __repr__(self) -> str:
        return f"SimulatedLLM(model={self.model!r}, calls={self.calls}, failures={self.failures})"

    # -- the port -------------------------------------------------------------------------

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        """Answer from the script after ``latency`` seconds, or fail as the pattern says."""
        opts = opts or CompletionOptions()
        conversation = check_request(messages, opts)
        await self._begin_call(conversation)
        return await self._answer(conversation, opts)

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        """Stream the answer ``complete`` would give in ``chunk_size``-character chunks.

        A scripted failure is raised before the first chunk.
        """
        opts = opts or CompletionOptions()
        conversation = check_request(messages, opts)
        await self._begin_call(conversation)
        completion = await self._answer(conversation, opts)
        text = completion.text
        pieces = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        for piece in pieces[:-1]:
            yield CompletionChunk(piece)
            await asyncio.sleep(0)
        yield CompletionChunk(
            pieces[-1] if pieces else "",
            completion.finish_reason,
            completion.usage,
            completion.tool_calls,
        )

    async def ping(self) -> None:
        """Raise the configured failure while ``down`` is set; otherwise return at once."""
        if self.down:
            raise self._failure()

    # -- internals ------------------------------------------------------------------------

    async def _begin_call(self, conversation: tuple[Message, ...]) -> None:
        self.calls += 1
        self.requests.append(conversation)
        if self.latency > 0:
            await self._sleep(self.latency)
        if self._should_fail():
            self.failures += 1
            raise self._failure()

    def _should_fail(self) -> bool:
        if self.down:
            return True
        if self.fail_every is not None and self.calls % self.fail_every == 0:
            return True
        return self.fail_probability > 0 and self._random.random() < self.fail_probability

    def _failure(self) -> Exception:
        if self.fail_with == "429":
            return RateLimitedError(
                f"{self.model}: scripted 429 rate limited",
                retry_after=self.retry_after,
                port="LLM",
            )
        if self.fail_with == "timeout":
            return PortTimeoutError(
                f"{self.model}: scripted timeout", timeout=self.latency, port="LLM"
            )
        return UnavailableError(f"{self.model}: scripted 500 server error", port="LLM")

    async def _answer(
        self, conversation: tuple[Message, ...], opts: CompletionOptions
    ) -> Completion:
        raw = await self._next_response(conversation)
        model = opts.model or self.model
        if isinstance(raw, Completion):
            return raw
        if isinstance(raw, ScriptedTurn):
            text = raw.text
            calls = tuple(
                ToolCall(c.id or f"call_{self._answered}_{i}", c.name, dict(c.arguments))
                for i, c in enumerate(raw.tool_calls)
            )
        else:
            text, calls = raw, ()
        for stop in opts.stop:  # the stop sequences first: "length" means max_tokens was hit
            cut = text.find(stop) if stop else -1
            if cut >= 0:
                text = text[:cut]
        words = text.split()
        finish = "tool_calls" if calls else "stop"
        if len(words) > opts.max_tokens:
            text, finish = " ".join(words[: opts.max_tokens]), "length"
            words = words[: opts.max_tokens]
        usage = Usage(estimate_tokens(conversation), max(1, len(words)))
        return Completion(text, model, usage, finish, calls)

    async def _next_response(
        self, conversation: tuple[Message, ...]
    ) -> str | Completion | ScriptedTurn:
        index = self._answered
        self._answered += 1
        if self.echo:
            users = [m.content for m in conversation if m.role == "user"]
            return users[-1] if users else conversation[-1].content
        if callable(self._responses):
            result = self._responses(conversation)
            if isinstance(result, Awaitable):
                result = await result
            return result
        responses = self._responses
        if self.cycle:
            return responses[index % len(responses)]
        return responses[min(index, len(responses) - 1)]
