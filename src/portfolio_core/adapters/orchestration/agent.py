"""The reference Agent: a bounded tool-calling loop over an LLM, with typed tools.

Each turn sends the conversation and the tools' JSON schemas to the LLM. A reply without
tool calls is the final answer. Each tool call is validated against the tool's pydantic
argument model and executed; its result, or the problem, goes back to the model as a
``tool`` message:

* a tool that raises -> an error result naming the exception (the run continues);
* an unknown tool name -> an error result listing the available tools (a retry prompt);
* arguments that do not validate -> an error result with the validation errors.

Every error result counts against that tool's retry budget (``retries`` per tool, default
the agent's ``tool_retries``); once spent, the tool is not run again in this run and further
calls get an error result saying so. After ``max_iterations`` model turns without a final
answer the run raises `MaxIterationsExceededError` carrying the transcript, or
returns what the configured final-answer handler makes of the transcript.

Tracing: one ``invoke_agent {name}`` span per run and one ``execute_tool {tool}`` span per
tool call, through the OpenTelemetry API (no-op unless an SDK is installed and configured),
with ``gen_ai.*`` attributes. Tool arguments and results are not recorded on spans.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, get_type_hints, overload

from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from portfolio_core._references import resolve_reference
from portfolio_core.ports import (
    LLM,
    AgentCapability,
    AgentOptions,
    AgentResult,
    CompletionOptions,
    InvalidInputError,
    MaxIterationsExceededError,
    Message,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
    declare,
)

__all__ = ["FinalAnswerHandler", "MemoryAgent", "MemoryAgentConfig", "Tool", "tool"]

FinalAnswerHandler = Callable[[tuple[Message, ...]], "str | Awaitable[str]"]


@dataclass(frozen=True, slots=True)
class Tool:
    """A callable the model may use: name, description, pydantic argument model, function.

    ``function`` receives the validated arguments as keyword arguments (or, when it takes a
    single pydantic-model parameter, the model instance) and may be sync or async. Its
    return value is sent to the model as text (JSON for non-strings).
    """

    name: str
    description: str
    arguments: type[BaseModel]
    function: Callable[..., Any]
    retries: int | None = None
    takes_model: bool = False

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.arguments.model_json_schema())

    async def __call__(self, args: BaseModel) -> Any:
        if self.takes_model:
            result = self.function(args)
        else:
            result = self.function(**{k: getattr(args, k) for k in type(args).model_fields})
        if inspect.isawaitable(result):
            result = await result
        return result


@overload
def tool(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    retries: int | None = None,
) -> Tool: ...


@overload
def tool(
    function: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    retries: int | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    retries: int | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Turn a typed function into a `Tool` (usable as ``@tool`` or ``@tool(...)``).

    The argument model is the function's single pydantic-model parameter, or is built from
    its annotated parameters (defaults kept). The description defaults to the docstring.
    """

    def build(fn: Callable[..., Any]) -> Tool:
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters.values())
        if len(params) == 1 and isinstance(hints.get(params[0].name), type):
            only = hints[params[0].name]
            if issubclass(only, BaseModel):
                return Tool(
                    name or fn.__name__, _describe(fn, description), only, fn, retries, True
                )
        fields: dict[str, Any] = {}
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise InvalidInputError(f"tool {fn.__name__!r} cannot take *args or **kwargs")
            annotation = hints.get(param.name, Any)
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (annotation, default)
        model = create_model(
            f"{fn.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        return Tool(name or fn.__name__, _describe(fn, description), model, fn, retries)

    return build(function) if function is not None else build


def _describe(fn: Callable[..., Any], description: str | None) -> str:
    return description or inspect.cleandoc(fn.__doc__ or "") or fn.__name__


def _as_tool(item: Tool | Callable[..., Any]) -> Tool:
    return item if isinstance(item, Tool) else tool(item)


class MemoryAgentConfig(BaseModel):
    """Manifest config of `MemoryAgent`; tools are named as ``module:attribute``."""

    model_config = ConfigDict(extra="forbid")

    name: str = "agent"
    tools: list[str] = Field(default_factory=list)
    max_iterations: int = Field(default=10, ge=1)
    tool_retries: int = Field(default=2, ge=0)
    system_prompt: str | None = None
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    final_answer_handler: str | None = None
    """``module:attribute`` of a function of the transcript returning the answer."""


def _import(path: str) -> Any:
    return resolve_reference(path)


class MemoryAgent:
    """A tool-using agent over any LLM; see the module docstring."""

    config_model: ClassVar[type[BaseModel]] = MemoryAgentConfig
    #: The class supports a final-answer handler; an instance declares the capability only
    #: when one is configured (without one, reaching max_iterations raises).
    capabilities: frozenset[str] = declare(AgentCapability.FINAL_ANSWER_HANDLER)

    def __init__(
        self,
        llm: LLM,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        *,
        name: str = "agent",
        max_iterations: int = 10,
        tool_retries: int = 2,
        system_prompt: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        final_answer_handler: FinalAnswerHandler | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        if max_iterations < 1:
            raise InvalidInputError("max_iterations must be at least 1", field="max_iterations")
        if tool_retries < 0:
            raise InvalidInputError("tool_retries must be >= 0", field="tool_retries")
        self._llm = llm
        self._tools: dict[str, Tool] = {}
        for item in tools:
            t = _as_tool(item)
            if t.name in self._tools:
                raise InvalidInputError(f"two tools are named {t.name!r}", field="tools")
            self._tools[t.name] = t
        self.name = name
        self._max_iterations = max_iterations
        self.tool_retries = tool_retries
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.final_answer_handler = final_answer_handler
        if final_answer_handler is None:
            self.capabilities = frozenset()
        self._tracer = trace.get_tracer("portfolio_core.agent", tracer_provider=tracer_provider)

    @classmethod
    def from_config(cls, config: MemoryAgentConfig, *, llm: LLM) -> Self:
        """Build from a manifest; ``uses: {llm: <name>}`` supplies the model."""
        tools = [_import(path) for path in config.tools]
        handler = _import(config.final_answer_handler) if config.final_answer_handler else None
        return cls(
            llm,
            tools,
            name=config.name,
            max_iterations=config.max_iterations,
            tool_retries=config.tool_retries,
            system_prompt=config.system_prompt,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            final_answer_handler=handler,
        )

    def __repr__(self) -> str:
        return f"MemoryAgent(name={self.name!r}, tools={list(self._tools)})"

    @property
    def max_iterations(self) -> int:
        """The default bound on model turns per run."""
        return self._max_iterations

    def available_tools(self) -> list[ToolSpec]:
        """The tools with their JSON argument schemas (a snapshot)."""
        return [t.spec for t in self._tools.values()]

    async def execute_tool(self, call: ToolCall) -> ToolResult:
        """Validate and run one call; every failure comes back as an error result."""
        with self._tracer.start_as_current_span(
            f"execute_tool {call.name}",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": call.name,
                "gen_ai.tool.call.id": call.id,
            },
        ) as span:
            result = await self._execute(call)
            if result.is_error:
                span.set_status(trace.StatusCode.ERROR, "tool call failed")
                span.set_attribute("error.type", "tool_error")
            return result

    async def _execute(self, call: ToolCall) -> ToolResult:
        t = self._tools.get(call.name)
        if t is None:
            names = ", ".join(sorted(self._tools)) or "(none)"
            return ToolResult(
                call.id,
                call.name,
                f"Unknown tool {call.name!r}. Available tools: {names}. "
                "Call one of these, or answer without a tool.",
                is_error=True,
            )
        try:
            args = t.arguments.model_validate(dict(call.arguments))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors()
            )
            return ToolResult(
                call.id,
                call.name,
                f"Invalid arguments for tool {call.name!r}: {problems}. "
                "Fix the arguments and call the tool again.",
                is_error=True,
            )
        try:
            value = await t(args)
        except Exception as exc:
            return ToolResult(
                call.id,
                call.name,
                f"Tool {call.name!r} failed with {type(exc).__name__}: {exc}",
                is_error=True,
            )
        content = value if isinstance(value, str) else json.dumps(value, default=str)
        return ToolResult(call.id, call.name, content)

    async def run(self, task: str, opts: AgentOptions | None = None) -> AgentResult:
        """Run ``task`` to a final answer; see the module docstring."""
        opts = opts or AgentOptions()
        limit = opts.max_iterations if opts.max_iterations is not None else self._max_iterations
        if limit < 1:
            raise InvalidInputError("max_iterations must be at least 1", field="max_iterations")
        if not task.strip():
            raise InvalidInputError("the task is empty", field="task")
        with self._tracer.start_as_current_span(
            f"invoke_agent {self.name}",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": self.name},
        ) as span:
            result = await self._loop(task, opts, limit)
            usage = result.usage or Usage(0, 0)
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            span.set_attribute("portfolio_core.agent.iterations", result.iterations)
            return result

    async def _loop(self, task: str, opts: AgentOptions, limit: int) -> AgentResult:
        transcript: list[Message] = []
        system = opts.system_prompt if opts.system_prompt is not None else self.system_prompt
        if system:
            transcript.append(Message("system", system))
        transcript.append(Message("user", task))
        specs = tuple(self.available_tools())
        completion_opts = CompletionOptions(
            max_tokens=self.max_tokens, temperature=self.temperature, tools=specs
        )
        failures: dict[str, int] = {}
        calls_made: list[ToolCall] = []
        usage_in = usage_out = 0
        for iteration in range(1, limit + 1):
            completion = await self._llm.complete(tuple(transcript), completion_opts)
            usage_in += completion.usage.input_tokens
            usage_out += completion.usage.output_tokens
            transcript.append(
                Message("assistant", completion.text, tool_calls=completion.tool_calls)
            )
            if not completion.tool_calls:
                return AgentResult(
                    completion.text,
                    tuple(transcript),
                    iteration,
                    tuple(calls_made),
                    Usage(usage_in, usage_out),
                )
            for call in completion.tool_calls:
                calls_made.append(call)
                result = await self._budgeted(call, failures)
                transcript.append(
                    Message("tool", result.content, name=call.name, tool_call_id=call.id)
                )
        final = tuple(transcript)
        if self.final_answer_handler is not None:
            answer = self.final_answer_handler(final)
            if inspect.isawaitable(answer):
                answer = await answer
            return AgentResult(
                str(answer), final, limit, tuple(calls_made), Usage(usage_in, usage_out)
            )
        raise MaxIterationsExceededError(
            f"agent {self.name!r} reached max_iterations={limit} without a final answer",
            transcript=final,
            iterations=limit,
        )

    async def _budgeted(self, call: ToolCall, counts: dict[str, int]) -> ToolResult:
        t = self._tools.get(call.name)
        budget = self.tool_retries if t is None or t.retries is None else t.retries
        if t is not None and counts.get(call.name, 0) > budget:
            return ToolResult(
                call.id,
                call.name,
                f"Tool {call.name!r} failed too many times and is disabled for this run. "
                "Answer without it.",
                is_error=True,
            )
        result = await self.execute_tool(call)
        if result.is_error and t is not None:
            counts[call.name] = counts.get(call.name, 0) + 1
        return result
