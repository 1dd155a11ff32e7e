"""Agent: run a task by letting a model call tools, up to a bounded number of turns.

Contract
--------
* ``run`` alternates model turns and tool executions until the model answers without tool
  calls, and returns an [AgentResult][portfolio_core.ports.agent.AgentResult] with the final answer
  and the full transcript.
  After ``max_iterations`` model turns without an answer it raises
  [MaxIterationsExceededError][portfolio_core.ports.errors.MaxIterationsExceededError] carrying the
  transcript
  (unless the adapter is configured with a final-answer handler).
* ``execute_tool`` never raises for a failing tool: the failure comes back as a
  [ToolResult][portfolio_core.ports.agent.ToolResult] with ``is_error=True`` so the model can react.
  An unknown tool name or
  arguments that do not validate also produce an error result describing the problem.
* ``available_tools`` returns a snapshot of the tools with their JSON schemas.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from portfolio_core.ports.llm import Message, ToolCall, ToolSpec, Usage

__all__ = ["Agent", "AgentCapability", "AgentOptions", "AgentResult", "ToolResult"]


class AgentCapability(StrEnum):
    """Optional parts of the Agent port."""

    FINAL_ANSWER_HANDLER = "agent.final_answer_handler"
    """A configured handler turns a run that reached ``max_iterations`` into an answer
    instead of raising. An adapter may declare it per instance (only when configured)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call, fed back to the model as a ``tool`` message."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Per-run options; ``None`` fields use the agent's configuration."""

    max_iterations: int | None = None
    system_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class AgentResult:
    """A finished run: final answer, transcript, turns taken and tool calls made."""

    output: str
    transcript: tuple[Message, ...]
    iterations: int
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None


@runtime_checkable
class Agent(Protocol):
    """A tool-using agent loop (async port)."""

    @property
    def max_iterations(self) -> int:
        """The default bound on model turns per run (10 unless configured)."""
        ...

    async def run(self, task: str, opts: AgentOptions | None = None) -> AgentResult:
        """Run ``task`` to a final answer; see the module docstring."""
        ...

    def available_tools(self) -> list[ToolSpec]:
        """The tools the model may call, with their argument schemas."""
        ...

    async def execute_tool(self, call: ToolCall) -> ToolResult:
        """Execute one call; failures are returned as error results, not raised."""
        ...
