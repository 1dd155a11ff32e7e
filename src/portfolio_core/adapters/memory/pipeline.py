"""Deprecated import path: use `portfolio_core.adapters.orchestration.pipeline`.

The pipeline is orchestration, not in-memory storage; it moved to ``adapters/orchestration/``.
This module re-exports it with a ``DeprecationWarning`` and will be removed in a later
release.
"""

import warnings

from portfolio_core.adapters.orchestration.pipeline import *  # noqa: F403
from portfolio_core.adapters.orchestration.pipeline import __all__ as __all__

warnings.warn(
    "portfolio_core.adapters.memory.pipeline moved to "
    "portfolio_core.adapters.orchestration.pipeline",
    DeprecationWarning,
    stacklevel=2,
)
