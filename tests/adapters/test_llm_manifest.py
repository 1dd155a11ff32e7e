"""A manifest wires scripted LLMs, the router over them, an agent and a pipeline over the
router (through the ``routed`` LLM), as the demo does."""

from __future__ import annotations

from pathlib import Path

from portfolio_core.adapters.orchestration.agent import tool
from portfolio_core.ports import LLM, Agent, Message, Pipeline, Router
from portfolio_core.registry import Registry


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


MANIFEST = """\
schema_version: 1
adapters:
  fast:
    port: llm
    adapter: scripted
    config:
      responses:
        - tool_calls: [{name: add, arguments: {a: 2, b: 40}}]
        - "The answer is 42."
  flaky:
    port: llm
    adapter: scripted
    config: {responses: ["never"], fail_every: 1, fail_with: "500"}
  router:
    port: router
    adapter: memory
    uses: {llms: [flaky, fast]}
    config:
      strategy: fallback
      providers:
        flaky: {model: tiny-flaky}
        fast: {model: tiny-fast, group: 1}
  routed:
    port: llm
    adapter: routed
    default: true
    uses: {router: router}
  agent:
    port: agent
    adapter: memory
    uses: {llm: routed}
    config: {name: calc, tools: ["tests.adapters.test_llm_manifest:add"], max_iterations: 4}
  pipeline:
    port: pipeline
    adapter: memory
    uses: {llm: routed}
    config:
      inputs: {text: str}
      steps:
        - {use: "portfolio_core.adapters.orchestration.pipeline:LLMStep", name: ask, uses: [llm],
           args: {prompt: "{text}"}}
"""


async def test_manifest_wires_router_agent_and_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(MANIFEST)
    registry = Registry.from_manifest(path, environ={})
    async with registry:
        router = registry.get(Router)
        assert [p.name for p in await router.list_providers()] == ["flaky", "fast"]
        agent = registry.get(Agent)
        result = await agent.run("What is 2 + 40?")
        assert result.output == "The answer is 42."
        assert [m.content for m in result.transcript if m.role == "tool"] == ["42"]
        pipeline = registry.get(Pipeline)
        run = await pipeline.run({"text": "again?"})
        assert run.context["answer"] == "The answer is 42."
        routed = registry.get(LLM)
        completion = await routed.complete([Message("user", "hi")])
        assert completion.provider == "fast"
