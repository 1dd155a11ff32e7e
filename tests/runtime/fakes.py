"""An adapter for reload tests: a memory config store with a label, whose ``get`` can be
held open, that records whether it was closed while a call was still in flight."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from portfolio_core.adapters.memory.config_store import MemoryConfigStore


class LabelledConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = ""
    timeout: float = 1.0


class LabelledStore(MemoryConfigStore):
    config_model: ClassVar[type[BaseModel]] = LabelledConfig  # type: ignore[assignment]
    built: ClassVar[list[LabelledStore]] = []

    def __init__(self, label: str = "", timeout: float = 1.0) -> None:
        super().__init__()
        self.label = label
        self.timeout = timeout
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.closed_while_busy = False
        self.closed = False
        LabelledStore.built.append(self)

    @classmethod
    def from_config(cls, config: LabelledConfig) -> Self:  # type: ignore[override]
        return cls(config.label, config.timeout)

    async def get(self, key: str, *, version: int | None = None) -> Any:
        self.in_flight += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            return self.label
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed_while_busy = self.in_flight > 0
        self.closed = True
        await super().aclose()
