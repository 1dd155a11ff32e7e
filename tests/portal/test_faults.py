"""Faults: a cut or stalled connection never hangs a call, a restarted server loses and
repeats nothing for a subscription, and a subscriber that stops reading does not make the
server buffer (measured)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from portfolio_core.adapters.remote import RemoteEventStore, RemoteLLM
from portfolio_core.ports import LLM, Message, NewEvent, RecordedEvent
from portfolio_core.ports.errors import PortTimeoutError, UnavailableError
from portfolio_core.testing.faults import BackgroundFaultProxy
from tests.portal.faulty import CountingLLM
from tests.portal.served import ServedRegistry

HELLO = [Message("user", "hello")]


@pytest.fixture
def proxied(served: ServedRegistry) -> Iterator[tuple[BackgroundFaultProxy, str]]:
    name = served.add(LLM, lambda: CountingLLM(chunks=10, delay=3.0))
    proxy = BackgroundFaultProxy(("127.0.0.1", served.port))
    yield proxy, name
    proxy.close()


def through(proxy: BackgroundFaultProxy, name: str, scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{proxy.port}/{name}"


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_a_cut_connection_is_a_retryable_unavailable_error(
    proxied: tuple[BackgroundFaultProxy, str], scheme: str
) -> None:
    proxy, name = proxied
    remote = RemoteLLM(through(proxy, name, scheme), timeout=30)
    try:
        await remote.ping()
        call = asyncio.ensure_future(remote.complete(HELLO))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await asyncio.to_thread(proxy.cut)
        with pytest.raises(UnavailableError) as info:
            await asyncio.wait_for(call, 5)
        assert time.monotonic() - started < 2, "the cut was not noticed promptly"
        assert info.value.retryable
    finally:
        await remote.aclose()


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_a_stalled_connection_times_out_instead_of_hanging(
    proxied: tuple[BackgroundFaultProxy, str], scheme: str
) -> None:
    proxy, name = proxied
    remote = RemoteLLM(through(proxy, name, scheme), timeout=0.5)
    try:
        await remote.ping()
        await asyncio.to_thread(proxy.stall)
        started = time.monotonic()
        with pytest.raises(PortTimeoutError) as info:
            await asyncio.wait_for(remote.complete(HELLO), 5)
        assert 0.4 < time.monotonic() - started < 2
        assert info.value.retryable
    finally:
        await asyncio.to_thread(proxy.restore)
        await remote.aclose()


# -- a real server process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``portfolio-core serve`` of a SQLite event store, restartable on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.manifest = tmp / "server.yaml"
        self.manifest.write_text(
            "schema_version: 1\n"
            "adapters:\n"
            "  events:\n"
            "    port: event_store\n"
            "    adapter: sqlite\n"
            f"    config: {{path: '{tmp / 'events.db'}', poll_interval: 0.05}}\n"
            "portal:\n"
            f"  port: {self.port}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portfolio_core.cli",
                "serve",
                str(self.manifest),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                assert self.proc.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_server_restart_mid_subscription_loses_and_repeats_nothing(
    server: ServerProcess, scheme: str
) -> None:
    address = f"{scheme}://127.0.0.1:{server.port}/events"
    writer = RemoteEventStore(address)
    reader = RemoteEventStore(address, reconnect_delay=0.05, heartbeat=1.0)
    handled: list[int] = []

    async def slow_handler(event: RecordedEvent) -> None:
        await asyncio.sleep(0.005)
        handled.append(event.position)

    try:
        for i in range(100):
            await writer.append("orders", [NewEvent("Placed", {"i": i})])
        subscription = await reader.subscribe(slow_handler)
        await subscription.wait_until(30, 10)
        await asyncio.to_thread(server.kill)  # mid-delivery: events in flight are lost
        in_flight_cut_at = subscription.checkpoint
        assert in_flight_cut_at < 100
        await asyncio.to_thread(server.start)
        for i in range(100, 150):
            for _ in range(100):  # the writer's pool reconnects too
                try:
                    await writer.append("orders", [NewEvent("Placed", {"i": i})])
                    break
                except UnavailableError:
                    await asyncio.sleep(0.05)
        await subscription.wait_until(150, 30)
        assert handled == list(range(1, 151)), "lost or repeated events across the restart"
        assert subscription.reconnects >= 1  # type: ignore[attr-defined]
        await reader.unsubscribe(subscription)
    finally:
        await writer.aclose()
        await reader.aclose()


async def _append_many(address: str, total: int, size: int) -> None:
    store = RemoteEventStore(address)
    try:
        blob = "x" * size
        for start in range(0, total, 500):
            await store.append(
                "bulk",
                [NewEvent("Blob", {"n": n, "blob": blob}) for n in range(start, start + 500)],
            )
    finally:
        await store.aclose()


async def test_a_stalled_subscriber_keeps_server_memory_bounded(tmp_path: Path) -> None:
    """Measured: the server's RSS growth while 10,000 events of 1 KB are appended, with a
    subscriber that took 8 items and never gives credit back, against the same appends with
    no subscriber at all. Without credit the server would hold every event for it."""
    total, size, credit = 10_000, 1000, 8
    growth: dict[str, int] = {}
    buffered: dict[str, float] = {}
    for mode in ("no subscriber", "stalled subscriber"):
        directory = tmp_path / mode.replace(" ", "-")
        directory.mkdir()
        process = ServerProcess(directory)
        process.start()
        try:
            address = f"http://127.0.0.1:{process.port}/events"
            await _append_many(address, 500, size)  # warm up the process
            before = process.rss_kib()
            async with aiohttp.ClientSession() as session:
                ws = None
                if mode == "stalled subscriber":
                    ws = await session.ws_connect(
                        f"ws://127.0.0.1:{process.port}/v1/ws", max_msg_size=0
                    )
                    await ws.send_str(
                        json.dumps(
                            {
                                "jsonrpc": "2.0",
                                "id": 1,
                                "method": "events.subscribe",
                                "params": {"@credit": credit},
                            }
                        )
                    )
                await _append_many(address, total, size)
                await asyncio.sleep(0.5)
                growth[mode] = process.rss_kib() - before
                metrics = await (
                    await session.get(f"http://127.0.0.1:{process.port}/metrics")
                ).text()
                buffered[mode] = next(
                    float(line.split()[-1])
                    for line in metrics.splitlines()
                    if line.startswith("portfolio_portal_buffered_items ")
                )
                if ws is not None:
                    received = 0
                    while True:
                        try:
                            message = await ws.receive(timeout=0.5)
                        except TimeoutError:
                            break
                        if message.type is not aiohttp.WSMsgType.TEXT:
                            break
                        frames = json.loads(message.data)
                        for frame in frames if isinstance(frames, list) else [frames]:
                            if frame.get("method") == "portal.item":
                                received += len(frame["params"]["items"])
                    assert received == credit, (
                        f"the server sent {received} items on {credit} credit"
                    )
                    await ws.close()
        finally:
            process.stop()
    data_kib = total * size // 1024
    print(
        f"\nserver RSS growth while appending {data_kib} KiB: {growth} (KiB); buffered {buffered}"
    )
    assert buffered["stalled subscriber"] == 0
    assert growth["stalled subscriber"] - growth["no subscriber"] < data_kib // 4, growth
