"""LLM: turn a conversation into a completion, whole or streamed.

Contract
--------
* ``complete`` returns one [Completion][portfolio_core.ports.llm.Completion] whose ``usage`` is
  always filled in (input and
  output token counts as the provider or local tokenizer counted them).
* ``stream`` yields [CompletionChunk][portfolio_core.ports.llm.CompletionChunk] objects whose
  ``text`` concatenates to the text
  ``complete`` would have returned; the last chunk carries ``finish_reason`` and ``usage``,
  and only the last one carries ``finish_reason``.
* Tool calls in a stream arrive whole: the last chunk carries the completion's
  [ToolCall][portfolio_core.ports.llm.ToolCall] objects, each with its id, name and parsed
  arguments, however the provider split them on the wire; no earlier chunk carries any. An
  adapter assembling a provider's pieces raises
  [UnavailableError][portfolio_core.ports.errors.UnavailableError] when the pieces do not
  fit together (a piece for no call, a call that changes its id or name, a call without a
  name), rather than yielding a guessed call.
* ``finish_reason``: ``"length"`` when generation stopped because the output reached
  ``max_tokens`` (then ``usage.output_tokens == max_tokens``), ``"tool_calls"`` exactly
  when the completion carries tool calls, ``"stop"`` otherwise (the model ended, or a stop
  sequence was met).
* ``CompletionOptions.stop``: generation ends before the first occurrence of any stop
  sequence; the returned text (whole or streamed) never contains one.
* Deadlines: the adapter's own deadline (its configured request timeout) raises
  [PortTimeoutError][portfolio_core.ports.errors.PortTimeoutError]. A deadline the caller imposes
  (``asyncio.timeout``, ``wait_for``) cancels the call as any coroutine is cancelled: the
  adapter lets the cancellation through and does not turn it into another error.
* Neither call mutates ``messages``. Neither is idempotent in general (a provider may bill
  twice); with ``temperature == 0`` and a fixed ``seed`` a local adapter is deterministic.
* Raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] for an empty
  conversation or
  bad options (``max_tokens < 1``, a negative ``temperature``, ``top_p`` outside
  ``(0, 1]``, a negative ``top_k``),
  [RateLimitedError][portfolio_core.ports.errors.RateLimitedError] (with ``retry_after``) on a
  provider 429, [UnavailableError][portfolio_core.ports.errors.UnavailableError] on 5xx or a
  refused connection, [PortTimeoutError][portfolio_core.ports.errors.PortTimeoutError] on the
  adapter's deadline (below).
* ``usage.output_tokens`` never exceeds ``max_tokens``. Offering ``tools`` to an adapter that
  does not declare ``LLMCapability.TOOLS`` raises
  [UnsupportedError][portfolio_core.ports.errors.UnsupportedError].
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "LLM",
    "Completion",
    "CompletionChunk",
    "CompletionOptions",
    "LLMCapability",
    "Message",
    "Role",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "estimate_tokens",
]

Role = Literal["system", "user", "assistant", "tool"]


class LLMCapability(StrEnum):
    """Optional parts of the LLM port."""

    STREAMING = "llm.streaming"
    TOOLS = "llm.tools"
    OFFLINE = "llm.offline"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to a model: name, description and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool with JSON arguments."""

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation."""

    role: Role
    content: str
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one completion."""

    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class CompletionOptions:
    """Per-call options. ``model`` of ``None`` means the adapter's configured model."""

    model: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    #: nucleus sampling: draw from the most likely tokens reaching this probability
    top_p: float = 1.0
    #: draw from the ``top_k`` most likely tokens only (0: no limit)
    top_k: int = 0
    stop: tuple[str, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    seed: int | None = None

    def check(self) -> None:
        """Raise [InvalidInputError][portfolio_core.ports.errors.InvalidInputError] naming the
        first option out of range: ``max_tokens < 1``, a negative ``temperature``, ``top_p``
        outside ``(0, 1]``, a negative ``top_k``. Adapters call it before any work."""
        from portfolio_core.ports.errors import InvalidInputError

        if self.max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        if not self.temperature >= 0:
            raise InvalidInputError("temperature must not be negative", field="temperature")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInputError("top_p must be in (0, 1]", field="top_p")
        if self.top_k < 0:
            raise InvalidInputError("top_k must be >= 0 (0: no limit)", field="top_k")


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished completion. ``finish_reason`` is ``stop``, ``length`` or ``tool_calls``."""

    text: str
    model: str
    usage: Usage
    finish_reason: str = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class CompletionChunk:
    """A piece of a streamed completion; the last one has ``finish_reason``, ``usage`` and
    the completion's tool calls, assembled."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@runtime_checkable
class LLM(Protocol):
    """A language model reached in process or over the network (async port)."""

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        """Complete the conversation; see the module docstring for guarantees and errors."""
        ...

    def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        """Stream the completion chunk by chunk (an async generator).

        Raises [UnsupportedError][portfolio_core.ports.errors.UnsupportedError] when the adapter
        does
        not declare ``LLMCapability.STREAMING``.
        """
        ...


def estimate_tokens(messages: Sequence[Message], *, chars_per_token: float = 4.0) -> int:
    """A provider-independent estimate of the input tokens of ``messages``.

    Roughly ``len(text) / chars_per_token`` plus four tokens of framing per message (role
    markers). Routers use it for context-window and cost decisions, and adapters whose
    backend reports no usage fall back to it, so that ``Completion.usage`` is always set.
    Deterministic; never raises for well-formed messages.
    """
    if chars_per_token <= 0:
        from portfolio_core.ports.errors import InvalidInputError

        raise InvalidInputError("chars_per_token must be positive", field="chars_per_token")
    chars = 0
    for message in messages:
        chars += len(message.content)
        for call in message.tool_calls:
            chars += len(call.name) + sum(
                len(str(k)) + len(str(v)) for k, v in call.arguments.items()
            )
    return int(chars / chars_per_token + 0.999) + 4 * len(messages)
