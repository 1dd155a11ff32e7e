"""Hot reload of a served manifest: ``portfolio-core serve`` reloads on a file change, on
SIGHUP and on ``POST /admin/reload`` (a write scope on every entry); only the changed
entries are rebuilt, a refused manifest keeps the running wiring and reports every located
problem, and calls in flight on a replaced adapter finish before it is closed.

The servers are real uvicorn servers on 127.0.0.1: in a thread of this process (so a test
can hold an adapter's call open) or, for SIGHUP, a ``portfolio-core serve`` process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portfolio_core._commands.serve import reloading_app
from portfolio_core.manifest import plan
from portfolio_core.portal import PortalConfig
from portfolio_core.ports import ConfigStore
from portfolio_core.registry import Registry, handle_target
from tests.portal.served import ServedApp
from tests.runtime.fakes import LabelledStore
from tests.support.serving import free_port, wait_ready

ADMIN = "admin-key-0123456789abcdef"
READER = "reader-key-0123456789abcdef"
NARROW = "narrow-key-0123456789abcdef"


def manifest(a: str = "one", b: str = "two", *, files: bool = True, extra: str = "") -> str:
    return f"""schema_version: 1
adapters:
  a:
    port: config_store
    adapter: tests.runtime.fakes:LabelledStore
    default: true
    config: {{label: {a}}}
  b:
    port: config_store
    adapter: tests.runtime.fakes:LabelledStore
    config: {{label: {b}}}
{extra}portal:
  auth:
    keys:
      - {{name: admin, secret: {ADMIN}}}
      - {{name: reader, secret: {READER}, scopes: [{{access: read}}]}}
      - {{name: narrow, secret: {NARROW}, scopes: [{{entries: [a]}}]}}
  reload: {{files: {str(files).lower()}, sighup: false, debounce: 0.02, drain_timeout: 20}}
"""


def label(client: httpx.Client, entry: str) -> Any:
    response = client.post(f"/v1/entries/{entry}/get", json={"key": "x"})
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the served wiring did not change in time"
        time.sleep(0.05)


def serve(path: Path) -> ServedApp:
    planned = plan(path)
    config = planned.sections["portal"]
    assert isinstance(config, PortalConfig)
    registry = Registry.from_manifest(path, hot_reload=True)
    served = ServedApp(reloading_app(registry, config, sighup=False))
    served.registry = registry  # type: ignore[attr-defined]
    return served


def serving(served: ServedApp, entry: str) -> Any:
    """The adapter ``entry`` reaches now (behind the registry's hot-reload handle)."""
    registry: Registry = served.registry  # type: ignore[attr-defined]
    return handle_target(registry.get(ConfigStore, entry))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "manifest.yaml"
    p.write_text(manifest())
    return p


@pytest.fixture
def client() -> Iterator[Callable[[ServedApp, str], httpx.Client]]:
    made: list[httpx.Client] = []

    def make(served: ServedApp, key: str = ADMIN) -> httpx.Client:
        made.append(httpx.Client(base_url=served.base, headers={"x-api-key": key}, timeout=20))
        return made[-1]

    yield make
    for c in made:
        c.close()


def instances(label_: str) -> list[LabelledStore]:
    return [s for s in LabelledStore.built if s.label == label_]


def test_editing_the_manifest_rebuilds_only_the_changed_entry(
    path: Path, client: Callable[..., httpx.Client]
) -> None:
    served = serve(path)
    try:
        http = client(served)
        assert (label(http, "a"), label(http, "b")) == ("one", "two")
        a_before, b_before = instances("one")[-1], instances("two")[-1]
        time.sleep(0.3)  # the watcher is running
        path.write_text(manifest(b="edited"))
        eventually(lambda: label(http, "b") == "edited")
        assert label(http, "a") == "one"
        assert instances("one")[-1] is a_before, "an unchanged entry was rebuilt"
        assert not a_before.closed, "an unchanged entry's adapter was closed"
        eventually(lambda: b_before.closed)
    finally:
        served.stop()


def test_the_admin_reload_needs_a_write_scope_on_every_entry(
    path: Path, client: Callable[..., httpx.Client]
) -> None:
    path.write_text(manifest(files=False))
    served = serve(path)
    try:
        path.write_text(manifest(b="by-admin", files=False))
        anonymous = httpx.post(served.base + "/admin/reload", timeout=10)
        assert anonymous.status_code == 401
        assert client(served, READER).post("/admin/reload").status_code == 403
        assert client(served, NARROW).post("/admin/reload").status_code == 403
        http = client(served)
        assert label(http, "b") == "two", "the file was reloaded with watching off"
        response = http.post("/admin/reload")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["rebuilt"], body["kept"], body["added"], body["removed"]) == (
            ["b"],
            ["a"],
            [],
            [],
        )
        assert label(http, "b") == "by-admin"
    finally:
        served.stop()


def test_a_refused_manifest_keeps_the_wiring_and_lists_every_located_problem(
    path: Path, client: Callable[..., httpx.Client]
) -> None:
    served = serve(path)
    try:
        http = client(served)
        time.sleep(0.3)
        broken = manifest(a="changed").replace("port: config_store\n", "port: nope\n", 1)
        broken = broken.replace(
            "portal:", "  c:\n    port: config_store\n    adapter: no_such_adapter\nportal:"
        )
        path.write_text(broken)
        time.sleep(1.0)  # the file watcher saw it and refused it
        assert (label(http, "a"), label(http, "b")) == ("one", "two")
        response = http.post("/admin/reload")
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problems = response.json()["problems"]
        assert len(problems) >= 2, problems
        assert all(p.startswith(f"{path}:") or f"{path.name}:" in p for p in problems)
        assert any("nope" in p for p in problems)
        assert any("no_such_adapter" in p for p in problems)
        assert (label(http, "a"), label(http, "b")) == ("one", "two")
        path.write_text(manifest(a="fixed"))
        eventually(lambda: label(http, "a") == "fixed")
    finally:
        served.stop()


def test_a_call_in_flight_finishes_before_its_adapter_is_closed(
    path: Path, client: Callable[..., httpx.Client]
) -> None:
    path.write_text(manifest(files=False))
    served = serve(path)
    try:
        http = client(served)
        old = instances("one")[-1]
        gate_ready = threading.Event()

        def hold() -> None:
            import asyncio

            old.gate = asyncio.Event()
            gate_ready.set()

        served.call_soon(hold)
        assert gate_ready.wait(5)
        in_flight: dict[str, Any] = {}

        def slow_call() -> None:
            with httpx.Client(base_url=served.base, headers={"x-api-key": ADMIN}) as c:
                in_flight["label"] = label(c, "a")

        caller = threading.Thread(target=slow_call)
        caller.start()
        eventually(lambda: old.in_flight == 1)
        path.write_text(manifest(a="new", files=False))
        reloaded: dict[str, httpx.Response] = {}
        reloader = threading.Thread(
            target=lambda: reloaded.setdefault("r", client(served).post("/admin/reload"))
        )
        reloader.start()
        eventually(lambda: serving(served, "a").label == "new")  # swapped in
        assert label(http, "a") == "new", "a new call did not reach the new adapter"
        assert not old.closed, "the old adapter was closed under a call in flight"
        assert caller.is_alive()
        assert reloader.is_alive()
        served.call_soon(old.gate.set)  # type: ignore[union-attr]
        caller.join(10)
        reloader.join(10)
        assert in_flight["label"] == "one", "the call in flight was cut or rerouted"
        assert reloaded["r"].status_code == 200
        assert reloaded["r"].json()["undrained"] == []
        assert old.closed
        assert not old.closed_while_busy
    finally:
        served.stop()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_serve_reloads_on_sighup(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest(files=False).replace("sighup: false", "sighup: true"))
    port = free_port()
    repo = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portfolio_core.cli",
            "serve",
            str(path),
            "--port",
            str(port),
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
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": ADMIN}
        ) as http:
            assert label(http, "b") == "two"
            path.write_text(
                manifest(b="after-hup", files=False).replace("sighup: false", "sighup: true")
            )
            time.sleep(0.5)
            assert label(http, "b") == "two", "reloaded without a trigger"
            server.send_signal(signal.SIGHUP)
            eventually(lambda: label(http, "b") == "after-hup")
            assert label(http, "a") == "one"
            assert server.poll() is None, "SIGHUP stopped the server"
    finally:
        server.terminate()
        server.wait(15)
