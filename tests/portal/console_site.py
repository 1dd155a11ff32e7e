"""A demo-like wiring served for the console's tests (and the proxy in front of it)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import httpx

from portfolio_core.portal import PortalConfig
from portfolio_core.ports import ConfigStore, EventStore, JobQueue
from portfolio_core.ports.event_store import NewEvent
from portfolio_core.ports.job_queue import NewJob
from portfolio_core.registry import Registry
from portfolio_core.testing.faults import BackgroundFaultProxy
from tests.portal.served import ServedRegistry

MANIFEST = Path(__file__).parent / "console" / "manifest.yaml"


class Site:
    """The served registry, the proxy in front of it and what the tests do to them."""

    def __init__(self, folder: Path, config: PortalConfig, key: str | None = None) -> None:
        self.manifest = folder / "manifest.yaml"
        shutil.copy(MANIFEST, self.manifest)
        self.registry = Registry.from_manifest(self.manifest)
        self.served = ServedRegistry(config, registry=self.registry)
        self.served.run(self.registry.start())
        self.proxy = BackgroundFaultProxy(("127.0.0.1", self.served.port))
        self.base = f"http://127.0.0.1:{self.proxy.port}"
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.served.base, timeout=10, headers=headers)

    def call_flaky(self) -> int:
        reply = self.http.post(
            "/v1/entries/flaky/complete", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        return reply.status_code

    def append(self, stream: str, type: str, data: dict[str, Any]) -> None:
        store = self.registry.get(EventStore, "events")
        self.served.run(store.append(stream, [NewEvent(type, data)]))

    def apply_config(self, changes: dict[str, Any], author: str, reason: str) -> int:
        """Apply a batch to the ``settings`` store; returns the new version."""
        store = self.registry.get(ConfigStore, "settings")
        return int(self.served.run(store.apply(changes, author=author, reason=reason)))

    def dead_letter(self, queue: str, task: str, error: str) -> str:
        """Enqueue a job with one attempt on ``jobs`` and fail it; returns its id."""
        jobs = self.registry.get(JobQueue, "jobs")

        async def run() -> str:
            job_id = await jobs.enqueue(NewJob(task, queue=queue, max_attempts=1))
            (held,) = await jobs.reserve(queue)
            await jobs.fail(held, error)
            return job_id

        return str(self.served.run(run()))

    def close(self) -> None:
        self.http.close()
        self.proxy.close()
        with contextlib.suppress(Exception):
            self.served.run(self.registry.aclose())
        self.served.stop()

    def registry_breaker_state(self) -> str:
        """The state of the flaky entry's circuit breaker."""
        from portfolio_core.boundary import boundary_of
        from portfolio_core.ports import LLM

        handle = boundary_of(self.registry.get(LLM, "flaky"))
        assert handle is not None
        assert handle.breaker is not None
        return handle.breaker.state
