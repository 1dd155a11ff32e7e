"""The demo's own LLM adapter, named in its manifest by ``module:Class``.

It shows what an application writes when the library's adapters do not fit: a class with a
``config_model`` and ``from_config`` that satisfies a port, depending only on ports.
`ToolPlanner` is a deterministic, rule-based "model" for the agent: it reads the task,
calls the calculator and the event counter, then answers from their results.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict

from portfolio_core.ports import (
    Completion,
    CompletionChunk,
    CompletionOptions,
    InvalidInputError,
    LLMCapability,
    Message,
    ToolCall,
    Usage,
    declare,
    estimate_tokens,
)

__all__ = ["ToolPlanner", "ToolPlannerConfig"]


class ToolPlannerConfig(BaseModel):
    """Manifest config of `ToolPlanner` (nothing to set)."""

    model_config = ConfigDict(extra="forbid")


_ARITHMETIC = re.compile(r"[\d(][\d\s.+\-*/%()]*[\d)]")
_COUNTABLE = {
    "question": "QuestionAsked",
    "answer": "AnswerGiven",
    "agent": "AgentAnswered",
    "run": "DemoRunStarted",
}


class ToolPlanner:
    """A deterministic tool-calling "model" for the agent.

    First turn: one ``calculator`` call per arithmetic expression in the task and one
    ``count_events`` call per kind of event it mentions (questions, answers, runs, agent
    tasks; ``local`` restricts answers to the local provider). Next turn (tool results in the
    conversation): a one-sentence answer quoting every result. A task with nothing to compute
    is answered at once.
    """

    config_model: ClassVar[type[BaseModel]] = ToolPlannerConfig
    capabilities: ClassVar[frozenset[str]] = declare(LLMCapability.TOOLS, LLMCapability.OFFLINE)

    model = "tool-planner"

    @classmethod
    def from_config(cls, config: ToolPlannerConfig) -> Self:
        return cls()

    def __repr__(self) -> str:
        return "ToolPlanner()"

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        """Plan tool calls for the task, or answer from the tool results."""
        if not messages:
            raise InvalidInputError("the conversation is empty", field="messages")
        opts = opts or CompletionOptions()
        usage_in = estimate_tokens(messages)
        results = [m for m in messages if m.role == "tool"]
        if results:
            text = self._answer(messages, results)
            return Completion(text, self.model, Usage(usage_in, len(text.split())), "stop")
        task = next((m.content for m in reversed(messages) if m.role == "user"), "")
        calls = self._plan(task) if opts.tools else ()
        if not calls:
            text = "There is nothing to compute or look up in this task."
            return Completion(text, self.model, Usage(usage_in, len(text.split())), "stop")
        return Completion("", self.model, Usage(usage_in, 4 * len(calls)), "tool_calls", calls)

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        """The completion as one chunk, tool calls included."""
        completion = await self.complete(messages, opts)
        yield CompletionChunk(
            completion.text, completion.finish_reason, completion.usage, completion.tool_calls
        )

    @staticmethod
    def _plan(task: str) -> tuple[ToolCall, ...]:
        calls: list[ToolCall] = []
        for match in _ARITHMETIC.finditer(task):
            expression = " ".join(match.group().split())
            if any(op in expression for op in "+-*/%"):
                calls.append(
                    ToolCall(f"call_{len(calls)}", "calculator", {"expression": expression})
                )
        lowered = task.lower()
        for word, event_type in _COUNTABLE.items():
            if word in lowered:
                arguments: dict[str, object] = {"event_type": event_type}
                if event_type == "AnswerGiven" and "local" in lowered:
                    arguments["provider"] = "local"
                calls.append(ToolCall(f"call_{len(calls)}", "count_events", arguments))
        return tuple(calls)

    @staticmethod
    def _answer(messages: Sequence[Message], results: Sequence[Message]) -> str:
        calls = {call.id: call for m in messages if m.role == "assistant" for call in m.tool_calls}
        parts: list[str] = []
        for result in results:
            call = calls.get(result.tool_call_id or "")
            if call is None or result.content.startswith(("Tool ", "Invalid ", "Unknown ")):
                parts.append(f"a tool failed ({result.content})")
            elif call.name == "calculator":
                parts.append(f"{call.arguments['expression']} = {result.content}")
            else:
                parts.append(f"the event store holds {result.content}")
        return "; ".join(parts) + "."
