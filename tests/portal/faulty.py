"""Adapters that misbehave on purpose, served to test what crosses the wire."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from portfolio_core.ports.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    NoHealthyProviderError,
    NotFoundError,
    PoolExhaustedError,
    PortError,
    PortTimeoutError,
    QuotaExceededError,
    RateLimitedError,
    TenantRequiredError,
    UnavailableError,
    UnsupportedError,
    WrongExpectedVersionError,
)
from portfolio_core.ports.llm import Completion, CompletionChunk, CompletionOptions, Message, Usage

#: key -> the error a RaisingCache raises for it
ERRORS: dict[str, PortError] = {
    "not-found": NotFoundError("no such thing", key="thing"),
    "conflict": ConflictError("someone else won"),
    "wrong-version": WrongExpectedVersionError("orders-1", 3, 5),
    "unavailable": UnavailableError("down for a moment", retry_after=2.5),
    "rate-limited": RateLimitedError("slow down", retry_after=0.75),
    "no-provider": NoHealthyProviderError("all cooling down", retry_after=3.0),
    "quota": QuotaExceededError("tokens spent", tenant="acme", resource="tokens", retry_after=60),
    "invalid": InvalidInputError("bad key shape", field="key"),
    "tenant-required": TenantRequiredError("no tenant"),
    "timeout": PortTimeoutError("too slow", timeout=1.5),
    "pool": PoolExhaustedError("too big", needed=10, total=4),
    "unsupported": UnsupportedError("not here", capability="cache.ttl"),
    "denied": AccessDeniedError("not yours", authenticated=True),
}


class RaisingCache:
    """A Cache whose ``get(key)`` raises ``ERRORS[key]``, or a non-port error for ``boom``."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    SECRET = "internal-detail-that-must-not-leak"

    async def get(self, key: str) -> Any:
        if key == "boom":
            raise RuntimeError(f"database password is {self.SECRET}")
        raise ERRORS[key]

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        await asyncio.sleep(float(value) if isinstance(value, int | float) else 0)

    async def delete(self, key: str) -> bool:
        return False

    async def clear(self) -> None:
        return None

    async def exists(self, key: str) -> bool:
        return False

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return {}

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        return None


class CountingLLM:
    """An LLM streaming ``chunks`` pieces slowly, counting open and closed streams."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"llm.streaming"})

    def __init__(self, chunks: int = 1000, delay: float = 0.01) -> None:
        self.chunks = chunks
        self.delay = delay
        self.opened = 0
        self.closed = 0
        self.sent = 0
        self.closed_event = threading.Event()

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        await asyncio.sleep(self.delay)
        return Completion("done", "counting", Usage(1, 1))

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        self.opened += 1
        try:
            for i in range(self.chunks):
                await asyncio.sleep(self.delay)
                self.sent += 1
                yield CompletionChunk(f"piece {i} ")
            yield CompletionChunk("", "stop", Usage(1, self.chunks))
        finally:
            self.closed += 1
            self.closed_event.set()
