"""The reference ConfigStore: every clause of the port, in process, as simply as possible.

Thread-safe (one lock around changes), usable from several event loops; watchers are woken
in process by every change. Nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.config_store import (
    DEFAULT_MAX_VALUE_BYTES,
    Draft,
    LogConfigStore,
)
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.config_store import ConfigStoreCapability

__all__ = ["MemoryConfigStore", "MemoryConfigStoreConfig"]


class MemoryConfigStoreConfig(BaseModel):
    """Configuration of `MemoryConfigStore` (``memory`` in a manifest).

    ``schemas`` maps key prefixes to ``module:Model`` references (pydantic models)."""

    model_config = ConfigDict(extra="forbid")

    schemas: dict[str, str] = Field(default_factory=dict)
    max_value_bytes: int = Field(DEFAULT_MAX_VALUE_BYTES, gt=0)


class MemoryConfigStore(LogConfigStore, Configurable):
    """In-process config store (the executable specification of the ConfigStore port).

    ``schemas`` maps key prefixes to validators (pydantic model classes, TypeAdapters,
    callables or ``module:attribute`` references): see
    [ConfigStore][portfolio_core.ports.ConfigStore].
    """

    config_model: ClassVar[type[BaseModel]] = MemoryConfigStoreConfig
    capabilities = declare(ConfigStoreCapability.SCHEMAS)

    def __init__(
        self,
        *,
        schemas: Mapping[str, object] | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        super().__init__(schemas=schemas, max_value_bytes=max_value_bytes)

    def __repr__(self) -> str:
        return f"MemoryConfigStore(version={self._log.version})"

    async def _commit(self, draft: Draft) -> int:
        with self._lock:
            stored = self._log.following(draft)
            self._log.add(stored)
        self._notifier.notify()
        return stored.version
