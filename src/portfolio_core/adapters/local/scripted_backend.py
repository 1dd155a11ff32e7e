"""Deprecated import path: use `portfolio_core.adapters.local.simulated_backend`.

The adapter was renamed ``SimulatedModelBackend`` (config ``SimulatedModelBackendConfig``) so
that ``ScriptedModelBackend`` names one thing: the test double in
`portfolio_core.testing.doubles`. This module keeps the old names as aliases, with a
``DeprecationWarning``, and will be removed in a later release. The manifest name
(``adapter: scripted``) is unchanged.
"""

import warnings

from portfolio_core.adapters.local.simulated_backend import *  # noqa: F403
from portfolio_core.adapters.local.simulated_backend import (
    SimulatedModelBackend as ScriptedModelBackend,
)
from portfolio_core.adapters.local.simulated_backend import (
    SimulatedModelBackendConfig as ScriptedModelBackendConfig,
)
from portfolio_core.adapters.local.simulated_backend import __all__ as _moved

__all__ = [*_moved, "ScriptedModelBackend", "ScriptedModelBackendConfig"]

warnings.warn(
    "portfolio_core.adapters.local.scripted_backend.ScriptedModelBackend is now "
    "portfolio_core.adapters.local.simulated_backend.SimulatedModelBackend",
    DeprecationWarning,
    stacklevel=2,
)
