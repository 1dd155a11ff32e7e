"""Feature flags kept in a ConfigStore: a typed direct API and an OpenFeature provider.

Flags live under a key prefix (``flags.`` by default), one `FlagDefinition` (JSON)
per flag. `Flags` evaluates them in process and follows the store's changes;
`ConfigStoreProvider` (needs the ``config`` extra: ``openfeature-sdk``) serves the
same flags to OpenFeature clients. This package depends on the ConfigStore port only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portfolio_core.flags._definition import FlagCondition, FlagDefinition, FlagRule, FlagType
from portfolio_core.flags._flags import (
    DEFAULT,
    DISABLED,
    ERROR,
    SPLIT,
    TARGETING_MATCH,
    Evaluation,
    FlagContext,
    Flags,
)

if TYPE_CHECKING:
    from portfolio_core.flags._provider import ConfigStoreProvider

__all__ = [
    "DEFAULT",
    "DISABLED",
    "ERROR",
    "SPLIT",
    "TARGETING_MATCH",
    "ConfigStoreProvider",
    "Evaluation",
    "FlagCondition",
    "FlagContext",
    "FlagDefinition",
    "FlagRule",
    "FlagType",
    "Flags",
]


def __getattr__(name: str) -> object:
    if name == "ConfigStoreProvider":  # imports openfeature only when asked for
        from portfolio_core.flags._provider import ConfigStoreProvider

        return ConfigStoreProvider
    raise AttributeError(f"module 'portfolio_core.flags' has no attribute {name!r}")
