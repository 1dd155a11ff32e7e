"""Deprecated import path: use `portfolio_core.adapters.memory.simulated_llm`.

The adapter was renamed ``SimulatedLLM`` (config ``SimulatedLLMConfig``) so that
``ScriptedLLM`` names one thing: the test double in `portfolio_core.testing.doubles`.
This module keeps the old names as aliases, with a ``DeprecationWarning``, and will be
removed in a later release. The manifest name (``adapter: scripted``) is unchanged.
"""

import warnings

from portfolio_core.adapters.memory.simulated_llm import *  # noqa: F403
from portfolio_core.adapters.memory.simulated_llm import (
    SimulatedLLM as ScriptedLLM,
)
from portfolio_core.adapters.memory.simulated_llm import (
    SimulatedLLMConfig as ScriptedLLMConfig,
)
from portfolio_core.adapters.memory.simulated_llm import __all__ as _moved

__all__ = [*_moved, "ScriptedLLM", "ScriptedLLMConfig"]

warnings.warn(
    "portfolio_core.adapters.memory.scripted_llm.ScriptedLLM is now "
    "portfolio_core.adapters.memory.simulated_llm.SimulatedLLM",
    DeprecationWarning,
    stacklevel=2,
)
