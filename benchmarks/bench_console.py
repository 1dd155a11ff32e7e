"""The operator console left open: the browser's memory stays flat over ten minutes.

A wiring with every kind of live source the console shows (a circuit-broken LLM that always
fails, an event store, a config store with feature flags, a job queue, a cache) is served by
uvicorn on 127.0.0.1; a headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by selenium) opens ``/console`` on the methods view (the one that redraws the most)
with updates every 0.1 s, while steady traffic flows: refused LLM calls, event appends, config
versions and flag changes, dead-lettered jobs and timeline events.

The JS heap is read after a forced garbage collection once the page's bounded lists are full
(after ``WARMUP`` seconds), then every minute, and at the end of ``SECONDS`` (600). The peer
is the page's own heap at the start of the measured window: the goal is that the heap at the
end is within 10 % of it (or 1 MB, whichever is larger). The browser test runs the same check
for 20 s in CI.

``PORTFOLIO_CORE_BENCH_SMOKE=1`` keeps the page open for 10 s (the CI smoke mode: it proves
the benchmark still runs, its figures mean nothing). Without a browser it says so and exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from portfolio_core.boundary.timeline import default_timeline
from portfolio_core.portal import Portal, PortalConfig
from portfolio_core.ports import ConfigStore, EventStore, JobQueue, NewEvent
from portfolio_core.ports.job_queue import NewJob
from portfolio_core.registry import Registry

SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
SECONDS = 10.0 if SMOKE else 600.0
WARMUP = 3.0 if SMOKE else 20.0
SAMPLE_EVERY = 5.0 if SMOKE else 60.0

MANIFEST = """schema_version: 1
adapters:
  flaky:
    port: llm
    adapter: scripted
    config: {model: flaky-1, fail_probability: 1.0, fail_with: "500", responses: [hi]}
    telemetry: {metrics: true}
    protection:
      circuit_breaker: {fail_max: 2, reset_timeout: 30}
  responses:
    port: cache
    adapter: memory
    telemetry: {metrics: true}
  events:
    port: event_store
    adapter: memory
    telemetry: {metrics: true}
  settings:
    port: config_store
    adapter: memory
  jobs:
    port: job_queue
    adapter: memory
"""
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1366,900",
)


class Server:
    """The registry served by uvicorn in a thread, its loop reachable for traffic."""

    def __init__(self, registry: Registry, config: PortalConfig) -> None:
        self.registry = registry
        self.loop: asyncio.AbstractEventLoop | None = None
        app = Portal(registry, config).app(manage_registry=True)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(main())

    def run(self, coro: Any) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def browser() -> tuple[Any, Path] | None:
    binary = os.environ.get("PORTFOLIO_CORE_CHROMIUM") or shutil.which("chromium")
    driver_path = os.environ.get("PORTFOLIO_CORE_CHROMEDRIVER") or shutil.which("chromedriver")
    if not binary or not driver_path:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="bench-console-"))
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = binary
    os.environ.setdefault("SE_OFFLINE", "true")
    return webdriver.Chrome(service=Service(driver_path), options=options), profile


def traffic(server: Server, stop: threading.Event) -> None:
    """Steady work for every source the page shows, about 20 rounds a second."""
    settings = server.registry.get(ConfigStore, "settings")
    jobs = server.registry.get(JobQueue, "jobs")
    events = server.registry.get(EventStore, "events")
    http = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10)

    async def dead_letter(n: int) -> None:
        await jobs.enqueue(NewJob("send", {"n": n}, queue=f"q{n % 3}", max_attempts=1))
        for held in await jobs.reserve(f"q{n % 3}", limit=5):
            await jobs.fail(held, f"failure {n}: " + "x" * 100)

    n = 0
    try:
        while not stop.is_set():
            n += 1
            http.post(
                "/v1/entries/flaky/complete",
                json={"messages": [{"role": "user", "content": "hi"}]},
            )
            server.run(events.append(f"s{n % 7}", [NewEvent("Tick", {"n": n, "t": "x" * 200})]))
            if n % 10 == 0:
                server.run(
                    settings.apply(
                        {"app.round": n, f"flags.f{n % 4}": {"enabled": n % 20 == 0}},
                        author="bench",
                        reason=f"round {n}",
                    )
                )
                server.run(dead_letter(n))
            default_timeline().publish("bench.soak", f"soak event {n}")
            stop.wait(0.05)
    finally:
        http.close()


def heap(driver: Any) -> float:
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    return float(driver.execute_cdp_cmd("Runtime.getHeapUsage", {})["usedSize"])


def main() -> int:
    found = browser()
    if found is None:
        print(
            "bench_console: no headless browser (install Debian's chromium and "
            "chromium-driver); nothing measured",
            file=sys.stderr,
        )
        return 0
    driver, profile = found
    folder = Path(tempfile.mkdtemp(prefix="bench-console-site-"))
    manifest = folder / "manifest.yaml"
    manifest.write_text(MANIFEST)
    registry = Registry.from_manifest(manifest)
    config = PortalConfig(
        console={"interval": 0.1, "history": 60, "tail": 30, "timeline": 60, "health_interval": 1}
    )
    server = Server(registry, config)
    stop = threading.Event()
    worker = threading.Thread(target=traffic, args=(server, stop), daemon=True)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/console")
        deadline = time.monotonic() + 20
        while (
            driver.execute_script("return document.getElementById('connection').dataset.state")
            != "live"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the console did not connect")
            time.sleep(0.05)
        driver.find_element("id", "tab-methods").click()
        worker.start()
        time.sleep(WARMUP)  # the page's bounded lists fill up
        start = heap(driver)
        samples = [start]
        began = time.monotonic()
        while time.monotonic() - began < SECONDS:
            time.sleep(min(SAMPLE_EVERY, SECONDS - (time.monotonic() - began)))
            samples.append(heap(driver))
        live = driver.execute_script("return document.getElementById('connection').dataset.state")
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(10)
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    end = samples[-1]
    print(f"{'minute':>8}{'JS heap MB':>12}")
    for i, value in enumerate(samples):
        print(f"{i * SAMPLE_EVERY / 60:>8.1f}{value / 1e6:>12.2f}")
    print(f"median {statistics.median(samples) / 1e6:.2f} MB; connection: {live}")
    print(
        json.dumps(
            {
                "benchmark": f"console page left open {SECONDS / 60:.0f} min: JS heap at the end "
                "vs at the start (after GC)",
                "ours": round(end / 1e6, 3),
                "peer": round(start / 1e6, 3),
                "unit": "MB",
                "ratio": round(start / end, 3),
                "goal": "flat: the end within 10% (or 1 MB) of the start, connection live",
                "met": (end - start) < max(1_000_000, 0.10 * start) and live == "live",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
