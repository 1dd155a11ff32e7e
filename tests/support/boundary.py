"""Test adapters and helpers for the boundary's tests."""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

from portfolio_core.boundary import wrap
from portfolio_core.ports import port_by_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedCache:
    """A Cache whose ``get`` sleeps ``delay`` and raises the queued errors first."""

    def __init__(self, delay: float = 0.0, errors: list[BaseException] | None = None) -> None:
        self.delay = delay
        self.errors = list(errors or [])
        self.calls = 0
        self.active = 0
        self.max_active = 0

    async def get(self, key: str) -> Any | None:
        self.calls += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.errors:
                raise self.errors.pop(0)
            return f"value:{key}"
        finally:
            self.active -= 1

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        return None

    async def delete(self, key: str) -> bool:
        return False

    async def clear(self) -> None:
        return None

    async def exists(self, key: str) -> bool:
        return False

    async def get_many(self, keys: Any) -> dict[str, Any]:
        return {}

    async def put_many(self, items: Any, ttl: float | None = None) -> None:
        return None


OPEN_UNTIL = re.compile(
    r"circuit breaker open; calls refused until \d\d:\d\d:\d\d UTC "
    r"\(in (\d+\.\d s|\d+ ms)\)"
)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def protect(adapter: Any, protection: dict[str, Any], **kw: Any) -> Any:
    """``adapter`` wrapped as a Cache with only ``protection`` configured."""
    return wrap(
        adapter,
        port=port_by_key("cache"),
        name=kw.pop("name", "c"),
        adapter_type="test",
        telemetry=None,
        protection=protection,
        **kw,
    )
