"""``portfolio-core serve`` end to end: the example's two processes share one event store."""

from __future__ import annotations

import json
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


MANIFEST = "schema_version: 1\nadapters:\n  c: {port: cache, adapter: memory}\nportal: {}\n"


def test_a_worker_builds_its_app_from_the_manifest_named_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from portfolio_core._commands.serve import _ENV, create_app

    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    config = {"openai": {"enabled": False}, "reload": {"files": False, "sighup": False}}
    monkeypatch.setenv(_ENV, json.dumps({"file": str(manifest), "config": config}))
    with TestClient(create_app()) as client:
        assert client.post("/v1/entries/c/exists", json={"key": "k"}).json() is False
        assert client.get("/v1/models").status_code == 404  # the passed config, not the file's


def _serve(argv: list[str]) -> int:
    import argparse

    from portfolio_core._commands import serve

    parser = argparse.ArgumentParser()
    serve.configure(parser)
    return serve.run(parser.parse_args(argv))


def test_serve_passes_the_manifests_app_and_options_to_uvicorn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from starlette.applications import Starlette

    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    started: list[tuple[object, dict[str, object]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append((app, options)))
    assert _serve([str(manifest), "--port", "8123", "--host", "127.0.0.1", "--no-reload"]) == 0
    [(app, options)] = started
    assert isinstance(app, Starlette)
    assert (options["host"], options["port"]) == ("127.0.0.1", 8123)


def test_serve_rejects_an_invalid_option_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    assert _serve([str(manifest), "--port", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("portfolio-core serve: ")
    assert "greater than or equal to 0" in err
