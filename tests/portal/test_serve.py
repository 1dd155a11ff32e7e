"""``portfolio-core serve`` end to end: the example's two processes share one event store."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from portfolio_core.adapters.remote import call_at
from portfolio_core.ports import Cache, EventStore, NewEvent
from portfolio_core.registry import Registry
from tests.support.serving import free_port, wait_ready

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "portal"
KEY = "example-app-key-0123456789"


@pytest.fixture
def example_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    port = free_port()
    env = {
        **os.environ,
        "PORTAL_PORT": str(port),
        "PORTAL_API_KEY": KEY,
        "PORTAL_READ_KEY": "example-read-key-0123456789",
        "PORTAL_STATE_DIR": str(tmp_path),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portfolio_core.cli",
            "serve",
            str(EXAMPLE / "server.yaml"),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_ready(port, server)
        yield env
    finally:
        server.terminate()
        server.wait(15)


def test_two_processes_share_one_event_store(example_env: dict[str, str]) -> None:
    script = str(EXAMPLE / "share_events.py")
    reader = subprocess.Popen(
        [sys.executable, script, "read", "5"],
        env=example_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "subscribed"
        writer = subprocess.run(
            [sys.executable, script, "write", "5"],
            env=example_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert writer.stdout.count("appended order") == 5
        out, _ = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    lines = [line for line in out.splitlines() if line.startswith("read OrderPlaced")]
    assert lines == [f"read OrderPlaced {{'order': {i}}} at position {i + 1}" for i in range(5)], (
        out
    )


async def test_client_manifest_and_call_at(
    example_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PORTAL_PORT", "PORTAL_API_KEY"):
        monkeypatch.setenv(name, example_env[name])
    port = example_env["PORTAL_PORT"]
    async with Registry.from_manifest(EXAMPLE / "client.yaml") as registry:
        events = registry.get(EventStore)
        await events.append("s", [NewEvent("Made", {"n": 1})])
        cache = registry.get(Cache)
        await cache.put("greeting", {"text": "hi"})
    got = await call_at(f"http://127.0.0.1:{port}/events", "read", "s", api_key=KEY)
    assert [e.data for e in got] == [{"n": 1}]
    assert await call_at(f"ws://127.0.0.1:{port}/responses", "get", "greeting", api_key=KEY) == {
        "text": "hi"
    }


def test_serve_with_several_workers(tmp_path: Path) -> None:
    port = free_port()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "schema_version: 1\nadapters:\n  c: {port: cache, adapter: memory}\nportal: {}\n"
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portfolio_core.cli",
            "serve",
            str(manifest),
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_ready(port, server)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/entries/c/exists",
            data=b'{"key": "k"}',
            headers={"content-type": "application/json"},
        )
        assert urllib.request.urlopen(request, timeout=5).read() == b"false"
    finally:
        server.terminate()
        server.wait(20)


def test_serve_reports_a_bad_manifest_with_its_location(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "schema_version: 1\nadapters:\n  c: {port: cache, adapter: memory}\nportal:\n  prot: 80\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "portfolio_core.cli", "serve", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{manifest}:5:3: portal.prot: unknown key 'prot'" in result.stderr
