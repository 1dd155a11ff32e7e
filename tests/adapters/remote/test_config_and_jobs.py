"""Remote ConfigStore and JobQueue beyond the kit: what the network changes and what the
portal adds (sharing, scopes, a blocking reserve, the wire form of deletions)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
from portfolio_core.adapters.remote import RemoteConfigStore, RemoteJobQueue
from portfolio_core.manifest import load
from portfolio_core.portal import PortalConfig
from portfolio_core.portal._config import ApiKey, AuthConfig, Scope
from portfolio_core.ports import ConfigStore, JobQueue
from portfolio_core.ports.config_store import DELETE
from portfolio_core.ports.errors import AccessDeniedError, PortTimeoutError
from portfolio_core.ports.job_queue import NewJob
from portfolio_core.testing.faults import BackgroundFaultProxy
from tests.portal.served import ServedRegistry

WRITER = "writer-secret-0123456789"
READER = "reader-secret-0123456789"


@pytest.fixture(scope="module")
def served() -> Iterator[ServedRegistry]:
    auth = AuthConfig(
        keys=[
            ApiKey(name="writer", secret=SecretStr(WRITER)),
            ApiKey(name="reader", secret=SecretStr(READER), scopes=[Scope(access="read")]),
        ]
    )
    server = ServedRegistry(PortalConfig(auth=auth))
    yield server
    server.stop()


async def test_two_clients_share_one_served_store_and_watch_over_websocket(
    served: ServedRegistry,
) -> None:
    name = served.add(ConfigStore, MemoryConfigStore)
    writer = RemoteConfigStore(served.address(name), api_key=WRITER)
    watcher_side = RemoteConfigStore(served.address(name, "ws"), api_key=READER)
    await writer.start()
    await watcher_side.start()
    try:
        assert "config_store.shared" in writer.capabilities
        watcher = watcher_side.watch("app.", from_version=0)
        await writer.apply({"app.timeout": 2.5, "other": 1}, author="ops", reason="slow db")
        await writer.apply({"app.timeout": DELETE})
        first = await asyncio.wait_for(anext(watcher), 5)
        second = await asyncio.wait_for(anext(watcher), 5)
        assert (first.version, first.updates(), first.author) == (1, {"app.timeout": 2.5}, "ops")
        assert (second.version, second.updates()) == (2, {"app.timeout": DELETE})
        assert (await watcher_side.read()).values == {"other": 1}
        await watcher.aclose()  # type: ignore[attr-defined]
    finally:
        await writer.aclose()
        await watcher_side.aclose()


async def test_a_read_only_key_reads_and_watches_but_cannot_apply(
    served: ServedRegistry,
) -> None:
    name = served.add(ConfigStore, MemoryConfigStore)
    reader = RemoteConfigStore(served.address(name), api_key=READER)
    try:
        assert await reader.current_version() == 0
        with pytest.raises(AccessDeniedError) as info:
            await reader.apply({"a": 1})
        assert info.value.authenticated
        with pytest.raises(AccessDeniedError):
            await reader.rollback(0)
    finally:
        await reader.aclose()
    jobs = RemoteJobQueue(served.address(served.add(JobQueue, MemoryJobQueue)), api_key=READER)
    try:
        assert (await jobs.counts("q")).available == 0
        with pytest.raises(AccessDeniedError):
            await jobs.enqueue(NewJob("t", queue="q"))
    finally:
        await jobs.aclose()


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_a_waiting_reserve_outlives_the_call_timeout(
    served: ServedRegistry, scheme: str
) -> None:
    """reserve(wait=...) blocks on the server by design: the caller's timeout is extended by
    the wait, so an enqueue during the wait is delivered instead of a PortTimeoutError."""
    name = served.add(JobQueue, lambda: MemoryJobQueue(poll_interval=5))
    consumer = RemoteJobQueue(served.address(name, scheme), api_key=WRITER, timeout=0.5)
    producer = RemoteJobQueue(served.address(name), api_key=WRITER)
    try:
        waiting = asyncio.ensure_future(consumer.reserve("q", wait=4))
        await asyncio.sleep(1.0)  # twice the call timeout
        assert not waiting.done(), "the reserve ended before anything was enqueued"
        job_id = await producer.enqueue(NewJob("t", {"n": 1}, queue="q"))
        (held,) = await asyncio.wait_for(waiting, 4)
        assert held.job.id == job_id
        # a call that does not wait keeps its timeout
        assert consumer._specs["counts"].waits is None
    finally:
        await consumer.aclose()
        await producer.aclose()


async def test_a_call_without_a_wait_still_times_out(served: ServedRegistry) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    class Slow(MemoryJobQueue):
        async def counts(self, queue: str) -> object:  # type: ignore[override]
            started.set()
            await asyncio.wait_for(release.wait(), 10)
            return await super().counts(queue)

    name = served.add(JobQueue, Slow)
    client = RemoteJobQueue(served.address(name), api_key=WRITER, timeout=0.3)
    try:
        with pytest.raises(PortTimeoutError):
            await client.counts("q")
    finally:
        served.loop.call_soon_threadsafe(release.set)  # type: ignore[union-attr]
        await client.aclose()


@pytest.mark.parametrize(
    "change",
    [{}, {"value": 1, "delete": True}, {"delete": False}, {"value": 1, "extra": 2}],
    ids=["empty", "both", "delete-false", "unknown-field"],
)
def test_a_malformed_change_on_the_wire_is_refused_naming_the_key(
    served: ServedRegistry, change: dict[str, object]
) -> None:
    name = served.add(ConfigStore, MemoryConfigStore)
    with httpx.Client(base_url=served.base, headers={"x-api-key": WRITER}) as client:
        response = client.post(
            f"/v1/entries/{name}/apply", json={"changes": {"keep": {"value": 1}, "bad": change}}
        )
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["type"].endswith(":invalid-input")
        assert "bad" in (problem.get("field") or "") + problem["detail"]
        version = client.post(f"/v1/entries/{name}/current_version", json={})
        assert version.json() == 0, "part of a refused batch was applied"


def test_a_manifest_addresses_config_stores_and_job_queues(tmp_path: Path) -> None:
    path = tmp_path / "client.yaml"
    path.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        "  settings:\n"
        "    port: config_store\n"
        "    address: ws://127.0.0.1:8123/settings\n"
        "  jobs:\n"
        "    port: job_queue\n"
        "    address: http://127.0.0.1:8123/jobs\n"
        "    config: {timeout: 2.5}\n"
    )
    wiring = load(path)
    settings = wiring.entries["settings"].adapter
    jobs = wiring.entries["jobs"].adapter
    assert isinstance(settings, RemoteConfigStore)
    assert isinstance(jobs, RemoteJobQueue)
    assert settings.address.websocket
    assert jobs._timeout == 2.5


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_a_watch_resumes_after_a_cut_connection_with_nothing_missed_or_repeated(
    served: ServedRegistry, scheme: str
) -> None:
    name = served.add(ConfigStore, MemoryConfigStore)
    proxy = BackgroundFaultProxy(("127.0.0.1", served.port))
    watching = RemoteConfigStore(
        f"{scheme}://127.0.0.1:{proxy.port}/{name}", api_key=READER, reconnect_delay=0.05
    )
    writer = RemoteConfigStore(served.address(name), api_key=WRITER)
    try:
        watcher = watching.watch(from_version=0)
        await writer.apply({"a": 1})
        seen = [(await asyncio.wait_for(anext(watcher), 5)).version]
        await asyncio.to_thread(proxy.drop)
        await writer.apply({"a": 2})
        await writer.apply({"a": 3, "b": DELETE})
        await asyncio.to_thread(proxy.drop)  # again, while reconnecting or idle
        await writer.apply({"a": 4})
        for _ in range(3):
            seen.append((await asyncio.wait_for(anext(watcher), 10)).version)
        assert seen == [1, 2, 3, 4]
        await asyncio.to_thread(proxy.drop)
        await writer.apply({"a": 5})
        change = await asyncio.wait_for(anext(watcher), 10)
        assert (change.version, change.updates()) == (5, {"a": 5})
        await watcher.aclose()  # type: ignore[attr-defined]
    finally:
        await writer.aclose()
        await watching.aclose()
        await asyncio.to_thread(proxy.close)
