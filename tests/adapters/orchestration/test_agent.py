"""The reference agent: typed tools, retries, budgets, max iterations, spans."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM
from portfolio_core.adapters.orchestration.agent import MemoryAgent, MemoryAgentConfig, tool
from portfolio_core.ports import (
    LLM,
    Agent,
    AgentOptions,
    Completion,
    InvalidInputError,
    MaxIterationsExceededError,
    Message,
    ToolCall,
    Usage,
)
from portfolio_core.testing.contracts.agent import AgentContract


@tool
def add(a: int, b: int = 0) -> int:
    """Add two integers."""
    return a + b


class DivideArgs(BaseModel):
    numerator: float
    denominator: float


@tool(name="divide", retries=1)
async def divide(args: DivideArgs) -> float:
    return args.numerator / args.denominator


def calls(*pairs: tuple[str, dict[str, object]]) -> Completion:
    return Completion(
        "",
        "m",
        Usage(3, 2),
        "tool_calls",
        tuple(ToolCall(f"c{i}", n, a) for i, (n, a) in enumerate(pairs)),
    )


def answer(text: str) -> Completion:
    return Completion(text, "m", Usage(5, 1))


def tool_messages(transcript: tuple[Message, ...]) -> list[str]:
    return [m.content for m in transcript if m.role == "tool"]


async def test_runs_tools_then_answers() -> None:
    llm = SimulatedLLM([calls(("add", {"a": 2, "b": 3})), answer("5")])
    agent = MemoryAgent(llm, [add, divide], system_prompt="be brief")
    assert isinstance(agent, Agent)
    result = await agent.run("what is 2+3?")
    assert result.output == "5"
    assert result.iterations == 2
    assert [c.name for c in result.tool_calls] == ["add"]
    assert tool_messages(result.transcript) == ["5"]
    assert result.transcript[0] == Message("system", "be brief")
    assert result.usage == Usage(8, 3)
    # the model saw the tools' schemas
    schema = {s.name: s.parameters for s in agent.available_tools()}
    assert schema["add"]["properties"]["a"]["type"] == "integer"
    assert schema["divide"]["required"] == ["numerator", "denominator"]


async def test_tool_exception_is_fed_back_as_an_error_result() -> None:
    llm = SimulatedLLM([calls(("divide", {"numerator": 1, "denominator": 0})), answer("cannot")])
    result = await MemoryAgent(llm, [divide]).run("1/0")
    assert "ZeroDivisionError" in tool_messages(result.transcript)[0]
    assert result.output == "cannot"


async def test_unknown_tool_and_bad_arguments_get_retry_prompts() -> None:
    llm = SimulatedLLM(
        [calls(("mul", {})), calls(("add", {"a": "x"})), calls(("add", {"a": 1})), answer("1")]
    )
    result = await MemoryAgent(llm, [add]).run("go")
    unknown, bad, good = tool_messages(result.transcript)
    assert "Unknown tool 'mul'" in unknown
    assert "add" in unknown
    assert "Invalid arguments" in bad
    assert "a:" in bad
    assert good == "1"


async def test_per_tool_retry_budget_disables_the_tool() -> None:
    bad = calls(("divide", {"numerator": 1, "denominator": 0}))
    llm = SimulatedLLM([bad, bad, bad, answer("gave up")])
    result = await MemoryAgent(llm, [divide]).run("go")
    msgs = tool_messages(result.transcript)
    assert "ZeroDivisionError" in msgs[0]
    assert "ZeroDivisionError" in msgs[1]
    assert "disabled" in msgs[2]


async def test_max_iterations_raises_with_the_transcript() -> None:
    llm = SimulatedLLM([calls(("add", {"a": 1}))])
    agent = MemoryAgent(llm, [add], max_iterations=3)
    assert agent.max_iterations == 3
    with pytest.raises(MaxIterationsExceededError) as info:
        await agent.run("loop")
    assert info.value.iterations == 3
    assert sum(1 for m in info.value.transcript if m.role == "assistant") == 3
    with pytest.raises(MaxIterationsExceededError):
        await agent.run("loop", AgentOptions(max_iterations=1))
    assert MemoryAgent(llm).max_iterations == 10


async def test_final_answer_handler_replaces_the_error() -> None:
    llm = SimulatedLLM([calls(("add", {"a": 1}))])

    async def handler(transcript: tuple[Message, ...]) -> str:
        return f"best effort after {len(transcript)} messages"

    result = await MemoryAgent(llm, [add], max_iterations=2, final_answer_handler=handler).run("x")
    assert result.output.startswith("best effort")
    assert result.iterations == 2


async def test_execute_tool_never_raises() -> None:
    agent = MemoryAgent(SimulatedLLM(), [add])
    ok = await agent.execute_tool(ToolCall("1", "add", {"a": 1, "b": 2}))
    assert (ok.content, ok.is_error) == ("3", False)
    assert (await agent.execute_tool(ToolCall("2", "nope"))).is_error
    assert (await agent.execute_tool(ToolCall("3", "add", {"a": 1, "zz": 1}))).is_error


async def test_spans_invoke_agent_and_execute_tool() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    llm = SimulatedLLM([calls(("add", {"a": 1}), ("nope", {})), answer("done")])
    await MemoryAgent(llm, [add], name="calc", tracer_provider=provider).run("go")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"invoke_agent calc", "execute_tool add", "execute_tool nope"}
    root = spans["invoke_agent calc"]
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert spans["execute_tool add"].parent is not None
    assert spans["execute_tool add"].parent.span_id == root.context.span_id
    assert spans["execute_tool nope"].status.is_ok is False


def test_bad_configuration() -> None:
    with pytest.raises(InvalidInputError):
        MemoryAgent(SimulatedLLM(), [add, add])
    with pytest.raises(InvalidInputError):
        MemoryAgent(SimulatedLLM(), max_iterations=0)


async def test_from_config_imports_tools() -> None:
    cfg = MemoryAgentConfig.model_validate(
        {"tools": [f"{__name__}:add", f"{__name__}:divide"], "max_iterations": 4}
    )
    agent = MemoryAgent.from_config(cfg, llm=SimulatedLLM())
    assert [t.name for t in agent.available_tools()] == ["add", "divide"]
    assert agent.max_iterations == 4
    with pytest.raises(InvalidInputError):
        MemoryAgent.from_config(MemoryAgentConfig(tools=["nowhere:x"]), llm=SimulatedLLM())


class TestMemoryAgentContract(AgentContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[..., MemoryAgent]:
        def make(llm: LLM | None = None) -> MemoryAgent:
            return MemoryAgent(llm or SimulatedLLM(), [add, divide])

        return make


class TestMemoryAgentWithHandlerContract(AgentContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[..., MemoryAgent]:
        def make(llm: LLM | None = None) -> MemoryAgent:
            return MemoryAgent(llm or SimulatedLLM(), [add], final_answer_handler=lambda t: "x")

        return make
