"""The LLM, Router, Agent and Pipeline adapters are registered and follow the adapter contract."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

import pytest
from pydantic import BaseModel

from portfolio_core.ports import port_by_key

EXPECTED = {
    ("llm", "scripted"),
    ("llm", "openai_compatible"),
    ("llm", "local"),
    ("router", "memory"),
    ("agent", "memory"),
    ("pipeline", "memory"),
}


@pytest.mark.parametrize(("port", "name"), sorted(EXPECTED))
def test_entry_point_loads_an_adapter_with_config_model(port: str, name: str) -> None:
    group = port_by_key(port).entry_point_group
    (ep,) = [e for e in entry_points(group=group) if e.name == name]
    cls = ep.load()
    assert issubclass(cls.config_model, BaseModel)
    assert cls.config_model.model_config.get("extra") == "forbid"
    assert inspect.ismethod(cls.from_config)


def _load(port: str, name: str) -> Any:
    group = port_by_key(port).entry_point_group
    (ep,) = [e for e in entry_points(group=group) if e.name == name]
    return ep.load()


def _build(port: str, name: str, config: dict[str, Any], **uses: object) -> Any:
    cls = _load(port, name)
    return cls.from_config(cls.config_model.model_validate(config), **uses)


async def test_wired_like_a_manifest_router_agent_and_pipeline() -> None:
    """What a manifest does: build each adapter from its config and hand it its uses."""
    from portfolio_core.ports import Message, StepStatus

    fast = _build("llm", "scripted", {"responses": ["fast answer"]})
    flaky = _build("llm", "scripted", {"responses": ["flaky answer"], "fail_every": 1})
    router = _build(
        "router",
        "memory",
        {"providers": {"flaky": {"model": "f"}, "fast": {"model": "q", "group": 1}}},
        llms={"flaky": flaky, "fast": fast},
    )
    answer = await router.complete([Message("user", "hi")])
    assert (answer.text, answer.provider) == ("fast answer", "fast")
    agent = _build("agent", "memory", {"max_iterations": 2}, llm=router.as_llm())
    assert (await agent.run("hi")).output == "fast answer"
    pipeline = _build(
        "pipeline",
        "memory",
        {
            "inputs": {"text": "str"},
            "steps": [
                {
                    "use": "portfolio_core.adapters.orchestration.pipeline:LLMStep",
                    "name": "ask",
                    "uses": ["llm"],
                    "args": {"prompt": "{text}"},
                }
            ],
        },
        llm=router.as_llm(),
    )
    result = await pipeline.run({"text": "hi"})
    assert result.steps["ask"].status is StepStatus.OK
    assert result.context["answer"] == "fast answer"
