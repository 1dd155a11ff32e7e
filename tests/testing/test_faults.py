"""The kit's fault proxy: forwards, cuts (live connections reset, new ones refused), stalls
(connections open, nothing forwarded), restores; on the caller's loop or in its own thread."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from portfolio_core.testing.faults import BackgroundFaultProxy, FaultProxy, ProxyState


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _round_trip(port: int, payload: bytes = b"ping", timeout: float = 2.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    finally:
        writer.close()


async def test_it_forwards_both_ways(echo_port: int) -> None:
    async with FaultProxy(("127.0.0.1", echo_port)) as proxy:
        assert proxy.port not in (0, echo_port)
        assert await _round_trip(proxy.port, b"hello") == b"hello"
        assert proxy.state is ProxyState.FORWARDING


async def test_cut_resets_live_connections_and_refuses_new_ones_until_restore(
    echo_port: int,
) -> None:
    async with FaultProxy(f"127.0.0.1:{echo_port}") as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"a")
        assert await reader.readexactly(1) == b"a"
        assert proxy.connections == 1
        await proxy.cut()
        assert proxy.connections == 0
        started = time.monotonic()
        writer.write(b"b")
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2)
        assert time.monotonic() - started < 1, "the live connection was not cut at once"
        writer.close()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await _round_trip(proxy.port)
        await proxy.restore()
        assert await _round_trip(proxy.port) == b"ping"


async def test_stall_holds_bytes_and_new_connections_until_restore(echo_port: int) -> None:
    async with FaultProxy(("127.0.0.1", echo_port)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        await proxy.stall()
        writer.write(b"held")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(4), 0.3)
        late = asyncio.ensure_future(_round_trip(proxy.port, b"late", timeout=10))
        await asyncio.sleep(0.3)
        assert not late.done(), "a new connection was served while stalled"
        assert not writer.is_closing()
        await proxy.restore()
        assert await asyncio.wait_for(reader.readexactly(4), 2) == b"held"
        assert await asyncio.wait_for(late, 2) == b"late"
        writer.close()


async def test_drop_resets_live_connections_but_keeps_accepting(echo_port: int) -> None:
    async with FaultProxy(("127.0.0.1", echo_port)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"a")
        await reader.readexactly(1)
        await proxy.drop()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2)
        writer.close()
        assert await _round_trip(proxy.port) == b"ping"


async def test_url_keeps_everything_but_the_address() -> None:
    async with FaultProxy("postgresql://u:p%40w@127.0.0.1:5432/db?sslmode=disable") as proxy:
        assert proxy.target == ("127.0.0.1", 5432)
        assert proxy.url("postgresql://u:p%40w@127.0.0.1:5432/db?sslmode=disable") == (
            f"postgresql://u:p%40w@127.0.0.1:{proxy.port}/db?sslmode=disable"
        )
        assert proxy.url("redis://127.0.0.1:6379/0") == f"redis://127.0.0.1:{proxy.port}/0"


@pytest.fixture
def echo_thread() -> Iterator[int]:
    """A blocking echo server in a thread, for the synchronous test."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    listener.close()


def _sync_round_trip(port: int, timeout: float = 2) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(b"sync")
        got = conn.recv(4)
        if not got:
            raise ConnectionResetError("closed without an answer")
        return got


def test_the_background_proxy_serves_synchronous_callers(echo_thread: int) -> None:
    with BackgroundFaultProxy(("127.0.0.1", echo_thread)) as proxy:
        assert _sync_round_trip(proxy.port) == b"sync"
        proxy.stall()
        with pytest.raises(TimeoutError):
            _sync_round_trip(proxy.port, timeout=0.3)
        proxy.cut()
        assert proxy.state is ProxyState.CUT
        with pytest.raises(OSError):
            _sync_round_trip(proxy.port)
        proxy.restore()
        assert _sync_round_trip(proxy.port) == b"sync"
    assert proxy.connections == 0
