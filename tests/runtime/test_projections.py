"""A manifest's ``projections:`` section: validated when the manifest loads, run over the
registry's entries, its lag read from the stores by ``health``, the ``projections`` command
and the operator console's panel."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from portfolio_core.boundary.panels import registered_panels
from portfolio_core.cli import main
from portfolio_core.manifest import ManifestError, plan
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.event_store import EventStore, NewEvent
from portfolio_core.registry import Registry
from portfolio_core.runtime import Projections, ProjectionsConfig
from portfolio_core.runtime._projections import PANEL
from portfolio_core.services.projections import ProjectionStatus

ROOT = Path(__file__).resolve().parents[2]


def manifest(tmp_path: Path, projection: str) -> Path:
    """A SQLite event store, a SQLite projection store (the read model's database) and
    the ``projections:`` section ``projection`` (YAML, indented under ``orders:``)."""
    path = tmp_path / "app.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            schema_version: 1
            adapters:
              events:
                port: event_store
                adapter: sqlite
                config: {{path: "{tmp_path / "events.db"}"}}
              checkpoints:
                port: projection_store
                adapter: sqlite
                config: {{path: "{tmp_path / "model.db"}"}}
            projections:
              orders:
            """
        )
        + textwrap.indent(textwrap.dedent(projection), "    ")
    )
    return path


SECTION = """\
handler: tests.support.projections:apply_added
types: [Added]
max_healthy_lag: 5
idle_interval: 0.02
"""


def section(path: Path) -> ProjectionsConfig:
    found = plan(path).sections["projections"]
    assert isinstance(found, ProjectionsConfig)
    return found


async def append_numbers(registry: Registry, count: int) -> None:
    events = registry.get(EventStore)
    await events.append(
        "order-1",
        [NewEvent("Added" if n % 2 else "Removed", {"n": n}) for n in range(1, count + 1)],
    )


def read_model(tmp_path: Path) -> list[int]:
    with sqlite3.connect(tmp_path / "model.db") as conn:
        return [n for (n,) in conn.execute("SELECT n FROM added ORDER BY position")]


async def test_a_section_runs_its_projection_and_reports_the_lag_from_the_stores(
    tmp_path: Path,
) -> None:
    path = manifest(tmp_path, SECTION)
    registry = Registry.from_manifest(path)
    await registry.start()
    try:
        projections = Projections(registry, section(path))
        await append_numbers(registry, 20)
        before = (await projections.status())["orders"]
        assert before == ProjectionStatus("orders", 0, 20, 5)
        assert (before.lag, before.healthy) == (20, False)
        panel = await projections.panel()
        assert panel.status == "warning"
        assert list(panel.rows) == [("orders", 0, 20, 20, "-", "lag beyond 5")]

        await projections.start()
        await projections.runners["orders"].wait_until(20, timeout=30)
        after = (await projections.status())["orders"]
        assert (after.checkpoint, after.head, after.lag, after.healthy) == (20, 20, 0, True)
        assert read_model(tmp_path) == list(range(1, 21, 2)), "types: [Added] was not applied"
        panel = await projections.panel()
        assert panel.status == "ok"
        assert list(panel.rows) == [("orders", 20, 20, 0, "active", "")]
        await projections.stop()
    finally:
        await registry.aclose()


async def test_a_store_that_cannot_be_read_is_an_error_row_not_a_crash(tmp_path: Path) -> None:
    path = manifest(tmp_path, SECTION)
    registry = Registry.from_manifest(path)
    await registry.start()
    projections = Projections(registry, section(path))
    await registry.aclose()  # the stores are closed: measuring them fails
    found = (await projections.status())["orders"]
    assert isinstance(found, Exception)
    panel = await projections.panel()
    assert panel.status == "error"
    assert panel.rows[0][:4] == ("orders", None, None, None)


@pytest.mark.parametrize(
    ("projection", "message"),
    [
        (SECTION + "colour: red\n", "unknown key 'colour'"),
        ("handler: not a reference\n", "is not 'package.module:function'"),
        (
            "handler: a.b:c\nlease_ttl: 1.0\nidle_interval: 0.6\n",
            "must be under half of lease_ttl",
        ),
        (SECTION + "batch_size: 0\n", "greater than or equal to 1"),
        (SECTION + "on_error: ignore\n", "'stop' or 'retry'"),
    ],
)
def test_a_bad_section_is_a_located_manifest_error(
    tmp_path: Path, projection: str, message: str
) -> None:
    with pytest.raises(ManifestError) as info:
        plan(manifest(tmp_path, projection))
    assert message in str(info.value)
    assert "projections" in str(info.value)


@pytest.mark.parametrize(
    ("projection", "message"),
    [
        (SECTION + "events: nowhere\n", "projection 'orders': events: no EventStore adapter"),
        (SECTION + "store: events\n", "projection 'orders': store: no ProjectionStore adapter"),
        (
            "handler: tests.support.no_such_module:handle\n",
            "projection 'orders': handler:",
        ),
        (
            "handler: tests.support.projections:NOT_A_FUNCTION\n",
            "is a int, not a function",
        ),
    ],
)
async def test_an_unresolvable_projection_names_itself_and_its_key(
    tmp_path: Path, projection: str, message: str
) -> None:
    path = manifest(tmp_path, projection)
    registry = Registry.from_manifest(path)
    try:
        with pytest.raises(InvalidInputError) as info:
            Projections(registry, section(path))
        assert message in str(info.value)
    finally:
        await registry.aclose()


async def test_health_prints_each_projections_lag_and_fails_beyond_its_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = manifest(tmp_path, SECTION)
    registry = Registry.from_manifest(path)
    await registry.start()
    try:
        await append_numbers(registry, 20)
    finally:
        await registry.aclose()
    assert await asyncio.to_thread(main, ["health", str(path)]) == 1
    out = capsys.readouterr().out
    assert "projection orders    UNHEALTHY lag 20 (at most 5): checkpoint 0, head 20" in out
    assert out.rstrip().endswith("overall: unhealthy")

    assert await asyncio.to_thread(main, ["projections", str(path), "--status"]) == 1
    assert (
        "orders: checkpoint 0, head 20, lag 20  UNHEALTHY (more than 5)" in capsys.readouterr().out
    )

    registry = Registry.from_manifest(path)
    await registry.start()
    try:
        projections = Projections(registry, section(path))
        await projections.runners["orders"].run_until_caught_up(timeout=30)
    finally:
        await registry.aclose()
    assert await asyncio.to_thread(main, ["health", str(path)]) == 0
    out = capsys.readouterr().out
    assert "projection orders    healthy   lag 0 (at most 5): checkpoint 20, head 20" in out
    assert await asyncio.to_thread(main, ["projections", str(path), "--status"]) == 0
    assert "orders: checkpoint 20, head 20, lag 0\n" in capsys.readouterr().out


def test_the_projections_command_runs_until_sigterm(tmp_path: Path) -> None:
    path = manifest(tmp_path, SECTION)
    with sqlite3.connect(tmp_path / "events.db"):
        pass
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "portfolio_core.cli", "projections", str(path)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        assert "running 1 projection(s): orders" in process.stderr.readline()
        asyncio.run(_append_and_wait(path, tmp_path))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _append_and_wait(path: Path, tmp_path: Path) -> None:
    registry = Registry.from_manifest(path)
    await registry.start()
    try:
        await append_numbers(registry, 6)
        for _ in range(600):
            with sqlite3.connect(tmp_path / "model.db") as conn:
                if conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'added'"
                ).fetchone()[0] and read_model(tmp_path) == [1, 3, 5]:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the running command did not project: {read_model(tmp_path)}")
    finally:
        await registry.aclose()


def test_the_projections_command_exits_1_when_a_handler_fails(tmp_path: Path) -> None:
    path = manifest(tmp_path, "handler: tests.support.projections:refuse_everything\n")
    asyncio.run(_append_only(path))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "portfolio_core.cli", "projections", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "projection orders stopped: RuntimeError: refusing position 1" in done.stderr


async def _append_only(path: Path) -> None:
    registry = Registry.from_manifest(path)
    await registry.start()
    try:
        await append_numbers(registry, 3)
    finally:
        await registry.aclose()


def test_serve_shows_the_projections_panel_on_the_console(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from portfolio_core._commands.serve import reloading_app
    from portfolio_core.portal import PortalConfig

    path = manifest(tmp_path, SECTION)
    registry = Registry.from_manifest(path, hot_reload=True)
    key = "operator-key-0123456789"
    config = PortalConfig.model_validate(
        {
            "reload": {"files": False, "sighup": False},
            "auth": {"keys": [{"name": "operator", "secret": key}]},
            "console": {"interval": 0.05},
        }
    )
    app = reloading_app(registry, config, projections=section(path))
    assert PANEL not in registered_panels()
    with TestClient(app) as http:
        assert http.portal is not None
        http.portal.call(append_numbers, registry, 20)  # on the app's loop
        state = http.get("/console/api/state", headers={"authorization": f"Bearer {key}"})
        assert state.status_code == 200, state.text
        panels = {p["name"]: p for p in state.json()["panels"]}
        assert panels[PANEL]["title"] == "Projections"
        assert panels[PANEL]["columns"][:4] == ["projection", "checkpoint", "head", "lag"]
        assert panels[PANEL]["rows"] == [["orders", 0, 20, 20, "-", "lag beyond 5"]]
        assert panels[PANEL]["status"] == "warning"
    assert PANEL not in registered_panels(), "the panel outlived the portal"
