"""Contract suite of the Agent port (async).

The model-driven clauses need to script the model: when the factory accepts an ``llm``
parameter, the kit passes a scripted LLM (``portfolio_core.testing.doubles.ScriptedLLM``);
otherwise those clauses are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from portfolio_core.ports.agent import Agent, AgentCapability, AgentOptions, AgentResult, ToolResult
from portfolio_core.ports.errors import MaxIterationsExceededError
from portfolio_core.ports.llm import Completion, ToolCall, ToolSpec, Usage
from portfolio_core.testing.clauses import clause, requires_absent
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.doubles import ScriptedLLM
from portfolio_core.testing.loop import (
    LoopRunner,
    accepts_keyword,
    close_adapter,
    open_adapter,
)
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = ["AgentContract"]

ScriptedAgent = Callable[[ScriptedLLM], Awaitable[Agent]]


def _answer(text: str) -> Completion:
    return Completion(text, "scripted", Usage(3, 1))


def _tool_call(i: int) -> Completion:
    call = ToolCall(f"call-{i}", "kit_no_such_tool", {})
    return Completion("", "scripted", Usage(3, 1), finish_reason="tool_calls", tool_calls=(call,))


class AgentContract(ContractSuite[Agent]):
    """The promises of [Agent][portfolio_core.ports.Agent] (see docs/ports/agent.md)."""

    port_key = "agent"
    capability_names = frozenset(c.value for c in AgentCapability)

    @pytest.fixture
    def scripted_agent(
        self, make_adapter: Factory, kit_clock: FakeClock, kit_runner: LoopRunner
    ) -> Iterator[ScriptedAgent]:
        """An async function: agent over a given ScriptedLLM (skips without ``llm=``)."""
        if not accepts_keyword(make_adapter, "llm"):
            pytest.skip("the factory does not accept llm=, so the kit cannot script the model")
        made: list[Agent] = []

        async def build(llm: ScriptedLLM) -> Agent:
            agent: Agent = await open_adapter(make_adapter, clock=kit_clock, llm=llm)
            made.append(agent)
            return agent

        yield build
        for agent in made:
            kit_runner.run(close_adapter(agent))

    @clause("agent.max_iterations.positive", "max_iterations is a positive int")
    def test_max_iterations(self, adapter: Agent) -> None:
        assert isinstance(adapter.max_iterations, int)
        assert adapter.max_iterations >= 1

    @clause("agent.tools.snapshot", "available_tools returns ToolSpecs as a snapshot")
    def test_tools_snapshot(self, adapter: Agent) -> None:
        tools = adapter.available_tools()
        assert all(isinstance(t, ToolSpec) for t in tools)
        names = [t.name for t in tools]
        assert len(names) == len(set(names)), f"duplicate tool names {names}"
        tools.clear()
        assert [t.name for t in adapter.available_tools()] == names

    @clause("agent.execute_tool.unknown", "an unknown tool gives an error result, not an exception")
    async def test_unknown_tool_is_error_result(self, adapter: Agent) -> None:
        result = await adapter.execute_tool(ToolCall("c1", "kit_no_such_tool", {}))
        assert isinstance(result, ToolResult)
        assert result.is_error, "an unknown tool must produce an error result"
        assert result.call_id == "c1"
        assert result.content, "the error result must describe the problem"

    @clause(
        "agent.execute_tool.bad_arguments", "arguments that do not validate give an error result"
    )
    async def test_bad_arguments_are_error_result(self, adapter: Agent) -> None:
        tools = [t for t in adapter.available_tools() if t.parameters.get("required")]
        if not tools:
            pytest.skip("no tool declares required arguments")
        result = await adapter.execute_tool(ToolCall("c2", tools[0].name, {}))
        assert result.is_error, f"{tools[0].name} accepted a call missing its required arguments"

    @clause("agent.run.answer", "a model answer without tool calls ends the run with that answer")
    async def test_run_returns_answer(self, scripted_agent: ScriptedAgent) -> None:
        agent = await scripted_agent(ScriptedLLM([_answer("forty-two")]))
        result = await agent.run("What is six times seven?")
        assert isinstance(result, AgentResult)
        assert result.output == "forty-two"
        assert result.iterations == 1
        assert any(m.role == "user" and "six times seven" in m.content for m in result.transcript)

    @clause(
        "agent.run.max_iterations",
        "after max_iterations model turns without an answer, MaxIterationsExceededError "
        "carries the transcript",
    )
    @requires_absent(AgentCapability.FINAL_ANSWER_HANDLER)
    @pytest.mark.parametrize("limit", [1, 3])
    async def test_run_bounded(self, scripted_agent: ScriptedAgent, limit: int) -> None:
        llm = ScriptedLLM([_tool_call(i) for i in range(limit + 5)])
        agent = await scripted_agent(llm)
        with pytest.raises(MaxIterationsExceededError) as info:
            await agent.run("loop forever", AgentOptions(max_iterations=limit))
        assert info.value.iterations == limit
        assert info.value.transcript, "the error must carry the transcript"
        assert len(llm.calls) == limit, (
            f"the model was called {len(llm.calls)} times, limit {limit}"
        )

    @clause(
        "agent.run.tool_errors_fed_back", "a failing tool call is fed back to the model, not raised"
    )
    async def test_tool_error_fed_back(self, scripted_agent: ScriptedAgent) -> None:
        llm = ScriptedLLM([_tool_call(0), _answer("recovered")])
        agent = await scripted_agent(llm)
        result = await agent.run("try a tool")
        assert result.output == "recovered"
        assert result.iterations == 2
        assert any(m.role == "tool" for m in result.transcript), (
            "the tool result is not in the transcript"
        )
