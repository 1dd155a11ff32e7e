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
