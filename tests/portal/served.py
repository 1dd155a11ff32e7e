"""A registry served by a real uvicorn server on 127.0.0.1, in a background thread.

Tests add adapters to it while it runs (each built inside the server's event loop, as a
manifest-wired adapter would be) and reach them with remote adapters by address.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from portfolio_core.portal import Portal, PortalConfig
from portfolio_core.registry import Registry

_names = itertools.count(1)


class ServedRegistry:
    """A :class:`Registry` served on an ephemeral port until :meth:`stop`."""

    def __init__(
        self,
        config: PortalConfig | None = None,
        *,
        registry: Registry | None = None,
        ssl: dict[str, Any] | None = None,
        ping_interval: float = 20.0,
    ) -> None:
        self.registry = registry or Registry()
        self.portal = Portal(self.registry, config or PortalConfig())
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        uv_config = uvicorn.Config(
            self.portal.app(),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            ws_ping_interval=ping_interval,
            ws_ping_timeout=ping_interval,
            **(ssl or {}),
        )
        self.server = uvicorn.Server(uv_config)
        self._scheme = "https" if ssl else "http"
        self._thread = threading.Thread(target=self._run, name="portal-test-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test portal did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(main())

    @property
    def base(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def address(self, entry: str, scheme: str | None = None) -> str:
        scheme = scheme or self._scheme
        return f"{scheme}://127.0.0.1:{self.port}/{entry}"

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run ``coro`` in the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(
        self, port: Callable[..., Any], build: Callable[[], Any], name: str | None = None
    ) -> str:
        """Build an adapter in the server's loop, start it, register it; returns its name."""
        entry = name or f"e{next(_names)}"

        async def make() -> Any:
            adapter = build()
            start = getattr(adapter, "start", None)
            if callable(start):
                result = start()
                if asyncio.iscoroutine(result):
                    await result
            return adapter

        adapter = self.run(make())
        self.registry.register(entry, adapter, port=port)
        return entry

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(20)


class ServedApp:
    """Any ASGI application served by uvicorn on an ephemeral port in a background thread,
    its lifespan run (startup before :meth:`__init__` returns, shutdown in :meth:`stop`)."""

    def __init__(self, app: Any) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="served-app", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the served application did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(main())

    def call_soon(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` in the server's loop (e.g. set an asyncio.Event made there)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(callback)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(20)
