"""The reference ConfigStore: every clause of the port, in process, as simply as possible.

Thread-safe (one lock around changes), usable from several event loops; watchers are woken
in process by every change. Nothing survives the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.backend import reach_backend
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
    [ConfigStore][portfolio_core.ports.ConfigStore]. ``faults`` is the conformance kit's hook
    for simulating an unreachable backend (see `portfolio_core.testing.faults`): it is called
    before every operation reads or changes anything, and an ``OSError`` it raises becomes
    [UnavailableError][portfolio_core.ports.errors.UnavailableError]. ``wall_clock``
    (``time.time`` by default) stamps each version's ``at``.
    """

    config_model: ClassVar[type[BaseModel]] = MemoryConfigStoreConfig
    capabilities = declare(ConfigStoreCapability.SCHEMAS)

    def __init__(
        self,
        *,
        schemas: Mapping[str, object] | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        faults: Callable[[str], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(schemas=schemas, max_value_bytes=max_value_bytes)
        self._faults = faults
        self._wall_clock = wall_clock

    def __repr__(self) -> str:
        return f"MemoryConfigStore(version={self._log.version})"

    def _backend(self, operation: str) -> None:
        """Where a networked store would reach its server: the fault hook may raise here,
        before anything is read or written. An unreachable backend (``OSError``) is
        UnavailableError."""
        reach_backend(self._faults, operation, what="config store", port="config_store")

    async def _ready(self) -> None:
        self._backend("call")

    async def get(self, key: str, *, version: int | None = None) -> Any:
        self._backend("get")  # the shared hot path reads without _ready
        return await super().get(key, version=version)

    async def _commit(self, draft: Draft) -> int:
        with self._lock:
            stored = self._log.following(draft, now=int(self._wall_clock() * 1_000_000))
            self._log.add(stored)
        self._notifier.notify()
        return stored.version
