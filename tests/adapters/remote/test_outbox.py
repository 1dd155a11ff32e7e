"""The outbox on a remote adapter's writes: while the portal is down, appends are recorded;
when a new server is up on the same address the relay replays them, and every acknowledged
append is in the served event store exactly once, in order per stream.

The portal is a real ``portfolio-core serve`` process serving a SQLite event store; it is
killed (SIGKILL, calls in flight included) and started again on the same port.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portfolio_core.boundary import OutboxAcceptedError, outbox_of
from portfolio_core.ports import AppendResult, EventStore, NewEvent, NotFoundError, PortError
from portfolio_core.registry import Registry
from tests.support.serving import free_port, wait_ready

BOUND = 60.0


class Portal:
    """A ``portfolio-core serve`` process that can be killed and started again."""

    def __init__(self, manifest: Path, port: int) -> None:
        self.manifest, self.port = manifest, port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portfolio_core.cli",
                "serve",
                str(self.manifest),
                "--port",
                str(self.port),
                "--no-reload",
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_ready(self.port, self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    manifest = tmp_path / "server.yaml"
    manifest.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        "  events:\n"
        "    port: event_store\n"
        "    adapter: sqlite\n"
        f"    config: {{path: {tmp_path / 'events.db'}}}\n"
        "portal: {}\n"
    )
    server = Portal(manifest, free_port())
    server.start()
    yield server
    server.kill()


async def test_appends_through_a_downed_portal_are_replayed_exactly_once_in_order(
    portal: Portal, tmp_path: Path
) -> None:
    client = tmp_path / "client.yaml"
    client.write_text(
        f"""schema_version: 1
adapters:
  events:
    port: event_store
    address: http://127.0.0.1:{portal.port}/events
    config: {{timeout: 2, connect_timeout: 1}}
    protection:
      outbox:
        methods: [append]
        path: {tmp_path / "outbox.db"}
        relay_interval: 0.05
        max_relay_interval: 0.2
"""
    )
    registry = Registry.from_manifest(client)
    await registry.start()
    events = registry.get(EventStore)
    outbox = outbox_of(events)
    assert outbox is not None
    acknowledged: dict[str, list[str]] = {f"s{i}": [] for i in range(3)}
    accepted = 0

    async def append(n: int) -> None:
        nonlocal accepted
        stream = f"s{n % 3}"
        event = NewEvent("Tick", {"n": n})
        try:
            result = await events.append(stream, [event])
            assert isinstance(result, AppendResult)
        except OutboxAcceptedError:
            accepted += 1
        except PortError:
            return  # refused outright: not acknowledged
        acknowledged[stream].append(event.id)

    try:
        for n in range(20):
            await append(n)
        assert accepted == 0, "appends went to the outbox while the portal was up"
        portal.kill()
        for n in range(20, 40):
            await append(n)
        assert accepted == 20, "appends during the outage were not all recorded"
        assert outbox.status().pending == 20
        health = await registry.health()
        assert "outbox: 20 pending" in health.entries["events"].detail
        portal.start()  # a new process on the same address, same SQLite file
        for n in range(40, 60):
            await append(n)

        deadline = asyncio.get_running_loop().time() + BOUND
        while outbox.status().pending:
            assert asyncio.get_running_loop().time() < deadline, (
                f"the outbox never drained: {outbox.status()}"
            )
            await asyncio.sleep(0.05)
        assert outbox.status().dead == 0
        assert sum(map(len, acknowledged.values())) == 60, "every append was acknowledged"
        for stream, ids in acknowledged.items():
            try:
                stored = [e.id for e in await events.read(stream)]
            except NotFoundError:
                stored = []
            assert stored == ids, f"{stream}: stored {stored} but acknowledged {ids}"
    finally:
        await registry.aclose()
