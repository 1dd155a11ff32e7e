"""Deprecated import path: use `portfolio_core.adapters.orchestration.router`.

The router is orchestration, not in-memory storage; it moved to ``adapters/orchestration/``.
This module re-exports it with a ``DeprecationWarning`` and will be removed in a later
release.
"""

import warnings

from portfolio_core.adapters.orchestration.router import *  # noqa: F403
from portfolio_core.adapters.orchestration.router import __all__ as __all__

warnings.warn(
    "portfolio_core.adapters.memory.router moved to portfolio_core.adapters.orchestration.router",
    DeprecationWarning,
    stacklevel=2,
)
