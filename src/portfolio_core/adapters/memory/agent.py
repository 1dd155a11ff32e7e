"""Deprecated import path: use `portfolio_core.adapters.orchestration.agent`.

The agent is orchestration, not in-memory storage; it moved to ``adapters/orchestration/``.
This module re-exports it with a ``DeprecationWarning`` and will be removed in a later
release.
"""

import warnings

from portfolio_core.adapters.orchestration.agent import *  # noqa: F403
from portfolio_core.adapters.orchestration.agent import __all__ as __all__

warnings.warn(
    "portfolio_core.adapters.memory.agent moved to portfolio_core.adapters.orchestration.agent",
    DeprecationWarning,
    stacklevel=2,
)
