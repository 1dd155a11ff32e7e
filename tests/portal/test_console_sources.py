"""The console's panels and timeline entries generated from the registry's ports: config
versions and flag changes of every ConfigStore entry, queue states and dead letters of every
JobQueue entry, the backlog of every outbox. No adapter has console code: a memory and a
SQLite store, and a queue that cannot list its queues, are all shown through their port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
from portfolio_core.adapters.sql.config_store import SQLiteConfigStore
from portfolio_core.boundary import outbox_of, unwrap
from portfolio_core.boundary.timeline import Timeline, TimelineEvent
from portfolio_core.portal import Portal, PortalConfig
from portfolio_core.portal._config import Scope
from portfolio_core.portal._console import Console
from portfolio_core.portal._security import ANONYMOUS, Principal
from portfolio_core.ports import ConfigStore, EventStore, JobQueue, NewEvent
from portfolio_core.ports.config_store import DELETE
from portfolio_core.ports.job_queue import NewJob
from portfolio_core.registry import Registry
from tests.support.outage import DownableEventStore

SECRET_VALUE = "s3cr3t-db-password"


class QuietQueue(MemoryJobQueue):
    """A job queue that does not declare job_queue.inspect."""

    capabilities = frozenset()


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    registry = Registry()
    registry.register("settings", MemoryConfigStore(), port=ConfigStore)
    registry.register("shared", SQLiteConfigStore(tmp_path / "config.db"), port=ConfigStore)
    registry.register("jobs", MemoryJobQueue(), port=JobQueue)
    registry.register("quiet", QuietQueue(), port=JobQueue)
    portal = Portal(registry, PortalConfig(console={"interval": 0.05}))
    yield Console(portal, Timeline())
    await registry.aclose()


async def sample(console: Console) -> None:
    console.sampler._panels_at = 0.0  # panels are sampled at most once a second otherwise
    await console.sampler.sample()


def panel(console: Console, name: str) -> dict[str, Any]:
    return console.sampler.panels[name].body


def events(console: Console, kind: str) -> list[TimelineEvent]:
    return [e for e in console.timeline.latest() if e.kind == kind]


async def test_config_versions_and_flag_changes_reach_the_timeline_and_panel(
    console: Console,
) -> None:
    store = console.registry.get(ConfigStore, "settings")
    await store.apply({"db.password": "initial"}, author="setup")  # before anyone watched
    async with console.sampler.watching():
        assert events(console, "config.version") == [], "old versions were published"
        await store.apply(
            {"db.password": SECRET_VALUE, "app.timeout": 3},
            author="ops",
            reason="rotate the password",
        )
        await store.apply({"flags.new-ui": {"enabled": True}, "flags.old": DELETE}, author="pm")
        await store.rollback(1, author="ops", reason="bad rotation")
        await sample(console)
        versions = events(console, "config.version")
        assert [e.data["version"] for e in versions] == [2, 3, 4]
        assert versions[0].entry == "settings"
        assert versions[0].data["keys"] == ["db.password", "app.timeout"]
        assert "version 2 by ops" in versions[0].title
        assert versions[0].detail == "rotate the password"
        assert versions[2].data["rollback_of"] == 1
        assert versions[2].severity == "warning"
        flags, rolled_back = events(console, "flags.change")
        assert flags.data["version"] == 3
        assert flags.data["flags"] == ["new-ui", "old"]
        assert flags.data["removed"] == ["old"]
        assert (rolled_back.data["version"], rolled_back.data["removed"]) == (4, ["new-ui"])
        body = panel(console, "config:settings")
        assert [row[0] for row in body["rows"]] == [4, 3, 2, 1]
        assert body["rows"][1][2] == "pm"
        assert body["note"] == "version 4"
        everything = json.dumps([body, [repr(e) for e in console.timeline.latest()]])
        assert SECRET_VALUE not in everything, "a config value was shown"
        await sample(console)
        assert len(events(console, "config.version")) == 3, "a version was published twice"
    # nobody watches: changes still reach the timeline when a page opens again
    await store.apply({"app.timeout": 4})
    await store.apply({"app.timeout": 5})
    assert console.sampler.task is None
    async with console.sampler.watching():
        await sample(console)
        assert [e.data["version"] for e in events(console, "config.version")] == [2, 3, 4, 5, 6]


async def test_every_config_store_entry_gets_its_panel(console: Console) -> None:
    shared = console.registry.get(ConfigStore, "shared")
    await shared.start()  # type: ignore[attr-defined]
    async with console.sampler.watching():
        await shared.apply({"a": 1}, author="ci")
        await sample(console)
        row = panel(console, "config:shared")["rows"][0]
        assert (row[0], row[2]) == (1, "ci")
        assert panel(console, "config:settings")["note"] == "no version yet"
        (event,) = events(console, "config.version")
        assert event.entry == "shared"


async def test_dead_letters_and_queue_states(console: Console) -> None:
    queue = console.registry.get(JobQueue, "jobs")
    await queue.enqueue(NewJob("send", queue="mail"))
    await queue.enqueue(NewJob("render", queue="reports", delay=60))
    async with console.sampler.watching():
        await sample(console)
        body = panel(console, "jobs:jobs")
        assert body["rows"] == [["mail", 0, 1, 0, 0, 0, 0], ["reports", 1, 0, 0, 0, 0, 0]]
        assert body["status"] == "ok"
        await queue.enqueue(NewJob("charge", {"order": 7}, queue="mail", max_attempts=1))
        held = await queue.reserve("mail", limit=2)
        charge = next(h for h in held if h.job.task == "charge")
        await queue.fail(charge, "card declined: insufficient funds")
        await sample(console)
        (dead,) = events(console, "jobs.dead_letter")
        assert dead.entry == "jobs"
        assert dead.severity == "error"
        assert "jobs/mail: 1 job dead-lettered (1 dead)" in dead.title
        assert dead.detail == "charge: card declined: insufficient funds"
        assert dead.data["jobs"][0]["task"] == "charge"
        body = panel(console, "jobs:jobs")
        assert body["rows"][0] == ["mail", 0, 0, 1, 0, 1, 0]
        assert body["status"] == "warning"
        await sample(console)
        assert len(events(console, "jobs.dead_letter")) == 1, "a dead letter was published twice"
        # a queue that appears later: its first dead letter is news too
        await queue.enqueue(NewJob("sync", queue="crm", max_attempts=1))
        (held_crm,) = await queue.reserve("crm")
        await queue.fail(held_crm, "crm down")
        await sample(console)
        assert [e.data["queue"] for e in events(console, "jobs.dead_letter")] == ["mail", "crm"]
        quiet = panel(console, "jobs:quiet")
        assert quiet["rows"] == []
        assert "job_queue.inspect" in quiet["note"]


async def test_an_outbox_backlog_shows_and_its_draining_too(tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        f"""schema_version: 1
adapters:
  audit:
    port: event_store
    adapter: tests.support.outage:DownableEventStore
    protection:
      outbox:
        methods: [append]
        path: {tmp_path / "outbox.db"}
        relay_interval: 0.02
        max_relay_interval: 0.05
"""
    )
    registry = Registry.from_manifest(manifest)
    await registry.start()
    audit = registry.get(EventStore, "audit")
    store = unwrap(audit)
    assert isinstance(store, DownableEventStore)
    console = Console(Portal(registry, PortalConfig()), Timeline())
    try:
        async with console.sampler.watching():
            await sample(console)
            assert panel(console, "outbox:audit")["rows"] == [[0, 0, "—", 10_000]]
            store.down = True
            with pytest.raises(Exception, match="accepted by the outbox"):
                await audit.append("s", [NewEvent("A")])
            await sample(console)
            (backlog,) = events(console, "outbox.backlog")
            assert backlog.entry == "audit"
            assert backlog.severity == "warning"
            body = panel(console, "outbox:audit")
            assert body["rows"][0][0] == 1
            assert body["status"] == "warning"
            store.down = False
            outbox = outbox_of(audit)
            assert outbox is not None
            for _ in range(500):
                if outbox.status().pending == 0:
                    break
                await asyncio.sleep(0.01)
            await sample(console)
            assert len(events(console, "outbox.drained")) == 1
            assert panel(console, "outbox:audit")["status"] == "ok"
    finally:
        await registry.aclose()


async def test_a_key_sees_only_the_panels_of_its_entries(console: Console) -> None:
    async with console.sampler.watching():
        await sample(console)
        every = {p["name"] for p in console.sampler.panels_for(ANONYMOUS)}
        assert {"config:settings", "config:shared", "jobs:jobs", "jobs:quiet"} <= every
        narrow = Principal("narrow", (Scope(entries=["jobs"], access="read"),))
        assert {p["name"] for p in console.sampler.panels_for(narrow) if ":" in p["name"]} == {
            "jobs:jobs"
        }
