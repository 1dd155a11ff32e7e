"""A loopback TCP proxy the test controls: forward, cut every connection, or stall them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class FaultProxy:
    """Listens on 127.0.0.1 (an ephemeral port) and forwards to ``target_port``.

    ``cut()`` closes every open connection (both sides see a reset/EOF); ``stall()`` stops
    forwarding bytes while keeping connections open; ``resume()`` forwards again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._flowing = threading.Event()
        self._flowing.set()
        self._resume: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._run(self._start())
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> asyncio.Server:
        self._resume = asyncio.Event()
        self._resume.set()
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            assert self._resume is not None
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    await self._resume.wait()
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._pairs.discard(pair)

    def cut(self) -> None:
        """Close every open connection now."""

        async def close_all() -> None:
            for a, b in list(self._pairs):
                for w in (a, b):
                    with contextlib.suppress(Exception):
                        w.transport.abort()
            self._pairs.clear()

        self._run(close_all())

    def stall(self) -> None:
        """Stop forwarding (connections stay open, bytes wait)."""

        async def stop() -> None:
            assert self._resume is not None
            self._resume.clear()

        self._run(stop())

    def resume(self) -> None:
        async def go() -> None:
            assert self._resume is not None
            self._resume.set()

        self._run(go())

    def close(self) -> None:
        self.cut()
        self._run(self._close_server())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _close_server(self) -> None:
        self._server.close()
        assert self._resume is not None
        self._resume.set()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)
