"""The router, pipeline and agent moved to ``adapters/orchestration``; the old import paths
still work, with a DeprecationWarning, and give the same objects."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("router", ("MemoryRouter", "MemoryRouterConfig", "RoutedLLM", "ProviderSettings")),
        ("pipeline", ("MemoryPipeline", "LLMStep", "Step", "step", "register_step")),
        ("agent", ("MemoryAgent", "MemoryAgentConfig", "tool")),
    ],
)
def test_old_import_path_warns_and_re_exports(module: str, names: tuple[str, ...]) -> None:
    old = f"portfolio_core.adapters.memory.{module}"
    new = importlib.import_module(f"portfolio_core.adapters.orchestration.{module}")
    sys.modules.pop(old, None)
    with pytest.deprecated_call(match=f"moved to portfolio_core.adapters.orchestration.{module}"):
        shim = importlib.import_module(old)
    for name in names:
        assert getattr(shim, name) is getattr(new, name)
    assert shim.__all__ == new.__all__


@pytest.mark.parametrize(
    ("old", "new", "renamed"),
    [
        (
            "portfolio_core.adapters.memory.scripted_llm",
            "portfolio_core.adapters.memory.simulated_llm",
            {"ScriptedLLM": "SimulatedLLM", "ScriptedLLMConfig": "SimulatedLLMConfig"},
        ),
        (
            "portfolio_core.adapters.local.scripted_backend",
            "portfolio_core.adapters.local.simulated_backend",
            {
                "ScriptedModelBackend": "SimulatedModelBackend",
                "ScriptedModelBackendConfig": "SimulatedModelBackendConfig",
            },
        ),
    ],
)
def test_renamed_adapters_keep_their_old_names_with_a_warning(
    old: str, new: str, renamed: dict[str, str]
) -> None:
    """One name per concept: ``Scripted<Port>`` is the test double in
    ``portfolio_core.testing.doubles``; the adapters are ``Simulated<Port>``."""
    current = importlib.import_module(new)
    sys.modules.pop(old, None)
    with pytest.deprecated_call(match="is now"):
        shim = importlib.import_module(old)
    for old_name, new_name in renamed.items():
        assert getattr(shim, old_name) is getattr(current, new_name)
    assert set(current.__all__) <= set(shim.__all__)
