"""The LLM, Router, Agent and Pipeline adapters are registered and follow the adapter contract."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

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
