"""Hot reload of a manifest: only entries whose resolved configuration changed are rebuilt,
a manifest that fails validation keeps the running wiring and reports every located error,
calls in flight on a replaced adapter finish before it is closed, and reloads are triggered
by the manifest file, SIGHUP, an admin call and run-time configuration changes."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.manifest import ManifestError
from portfolio_core.ports import ConfigStore
from portfolio_core.registry import Registry
from portfolio_core.runtime import Reloader, ReloadOutcome
from tests.runtime.fakes import LabelledStore

ADAPTER = "tests.runtime.fakes:LabelledStore"


def manifest(a: str = "one", b: str = "two", extra: str = "") -> str:
    return f"""schema_version: 1
adapters:
  a:
    port: config_store
    adapter: {ADAPTER}
    default: true
    config: {{label: {a}}}
  b:
    port: config_store
    adapter: {ADAPTER}
    config: {{label: {b}, timeout: "${{config:app.timeout:-1.5}}"}}
{extra}"""


def write(path: Path, text: str) -> None:
    """Replace the manifest (sync: a test's file edit, not the code under test)."""
    path.write_text(text)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "manifest.yaml"
    p.write_text(manifest())
    return p


@pytest.fixture
async def registry(path: Path) -> AsyncIterator[Registry]:
    registry = Registry.from_manifest(path, hot_reload=True)
    await registry.start()
    yield registry
    await registry.aclose()


def _instance(registry: Registry, name: str) -> LabelledStore:
    item = registry._state.items[name]
    assert isinstance(item.instance, LabelledStore)
    return item.instance


async def test_only_changed_entries_are_rebuilt(path: Path, registry: Registry) -> None:
    a, b = _instance(registry, "a"), _instance(registry, "b")
    write(path, manifest(b="changed"))
    report = await registry.reload()
    assert (report.rebuilt, report.kept, report.added, report.removed) == (("b",), ("a",), (), ())
    assert _instance(registry, "a") is a, "an unchanged entry was rebuilt"
    assert _instance(registry, "b") is not b
    assert b.closed
    assert not a.closed
    assert await registry.get(ConfigStore, "b").get("x") == "changed"


async def test_a_dependency_change_rebuilds_its_dependents(tmp_path: Path) -> None:
    base = """schema_version: 1
adapters:
  store:
    port: event_store
    adapter: memory
    config: {{max_event_bytes: {n}}}
  other:
    port: config_store
    adapter: memory
"""
    path = tmp_path / "m.yaml"
    write(path, base.format(n=1000))
    registry = Registry.from_manifest(path)
    try:
        write(path, base.format(n=2000))
        report = await registry.reload()
        assert report.rebuilt == ("store",)
        assert report.kept == ("other",)
    finally:
        await registry.aclose()


async def test_an_invalid_manifest_keeps_the_wiring_and_lists_every_problem(
    path: Path, registry: Registry
) -> None:
    a = _instance(registry, "a")
    handle = registry.get(ConfigStore, "a")
    write(
        path,
        manifest(a="changed").replace(
            "port: config_store\n    adapter: tests", "port: nope\n    adapter: tests", 1
        )
        + "  c:\n    port: config_store\n    adapter: no_such_adapter\n",
    )
    reloader = Reloader(registry, watch_files=False, sighup=False)
    outcome = await reloader.reload()
    assert not outcome.ok
    assert outcome.trigger == "admin"
    assert len(outcome.problems) >= 2, outcome.problems
    assert all(f"{path.name}:" in p for p in outcome.problems), outcome.problems
    assert any("nope" in p for p in outcome.problems)
    assert any("no_such_adapter" in p for p in outcome.problems)
    assert _instance(registry, "a") is a
    assert not a.closed
    assert await handle.get("x") == "one", "the running wiring changed"
    with pytest.raises(ManifestError):
        await registry.reload()


async def test_calls_in_flight_finish_before_the_old_adapter_is_closed(
    path: Path, registry: Registry
) -> None:
    handle = registry.get(ConfigStore)
    old = _instance(registry, "a")
    old.gate = asyncio.Event()
    call = asyncio.ensure_future(handle.get("x"))
    await asyncio.sleep(0.01)
    assert old.in_flight == 1
    write(path, manifest(a="new"))
    reloading = asyncio.ensure_future(registry.reload(drain_timeout=10))
    await asyncio.sleep(0.05)
    assert not reloading.done(), "the reload did not wait for the call in flight"
    assert not old.closed
    assert await handle.get("y") == "new", "a new call did not go to the new adapter"
    old.gate.set()
    assert await call == "one", "the call in flight was cut"
    report = await reloading
    assert report.rebuilt == ("a",)
    assert report.undrained == ()
    assert old.closed
    assert not old.closed_while_busy


async def test_a_drain_timeout_closes_anyway_and_says_so(path: Path, registry: Registry) -> None:
    handle = registry.get(ConfigStore)
    old = _instance(registry, "a")
    old.gate = asyncio.Event()
    call = asyncio.ensure_future(handle.get("x"))
    await asyncio.sleep(0.01)
    write(path, manifest(a="new"))
    report = await registry.reload(drain_timeout=0.05)
    assert report.undrained == ("a",)
    assert old.closed_while_busy
    old.gate.set()
    await call


async def test_the_admin_call_reports_what_changed(path: Path, registry: Registry) -> None:
    seen: list[ReloadOutcome] = []
    reloader = Reloader(registry, watch_files=False, sighup=False, on_reload=seen.append)
    write(path, manifest(extra="  c:\n    port: config_store\n    adapter: memory\n"))
    outcome = await reloader.reload()
    assert outcome.ok
    assert outcome.report is not None
    assert outcome.report.added == ("c",)
    assert seen == [outcome]
    assert list(reloader.outcomes) == [outcome]


async def test_a_change_to_the_file_reloads(path: Path, registry: Registry) -> None:
    done = asyncio.Event()
    reloader = Reloader(registry, sighup=False, debounce=0.02, on_reload=lambda o: done.set())
    await reloader.start()
    try:
        await asyncio.sleep(0.2)  # let the watcher start
        write(path, manifest(b="from-file"))
        await asyncio.wait_for(done.wait(), 10)
        assert reloader.outcomes[-1].trigger == "file"
        assert reloader.outcomes[-1].ok
        assert await registry.get(ConfigStore, "b").get("x") == "from-file"
    finally:
        await reloader.aclose()


async def test_sighup_reloads(path: Path, registry: Registry) -> None:
    done = asyncio.Event()
    reloader = Reloader(registry, watch_files=False, on_reload=lambda o: done.set())
    await reloader.start()
    try:
        write(path, manifest(a="from-sighup"))
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(done.wait(), 10)
        assert reloader.outcomes[-1].trigger == "sighup"
        assert await registry.get(ConfigStore).get("x") == "from-sighup"
    finally:
        await reloader.aclose()


async def test_a_config_change_reloads_the_entries_that_reference_it(path: Path) -> None:
    store = MemoryConfigStore()
    await store.apply({"app.timeout": 2.5})
    registry = Registry.from_manifest(path, config=await store.read(), hot_reload=True)
    await registry.start()
    outcomes: asyncio.Queue[ReloadOutcome] = asyncio.Queue()
    reloader = Reloader(
        registry, config_store=store, watch_files=False, sighup=False, on_reload=outcomes.put
    )
    await reloader.start()
    try:
        a, b = _instance(registry, "a"), _instance(registry, "b")
        assert b.timeout == 2.5
        assert registry.config_keys == {"app.timeout"}
        await store.apply({"unrelated": 1})
        version = await store.apply({"app.timeout": 9})
        outcome = await asyncio.wait_for(outcomes.get(), 10)
        assert outcome.trigger == "config"
        assert outcome.config_version == version
        assert outcome.report is not None
        assert outcome.report.rebuilt == ("b",)
        assert outcomes.empty(), "a change to an unreferenced key reloaded"
        assert _instance(registry, "a") is a
        assert _instance(registry, "b").timeout == 9
        assert b.closed
    finally:
        await reloader.aclose()
        await registry.aclose()
        await store.aclose()


def test_a_missing_config_key_is_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    write(path, manifest().replace("${config:app.timeout:-1.5}", "${config:app.timeout}"))
    with pytest.raises(ManifestError) as info:
        Registry.from_manifest(path, config={"app.timeuot": 1})
    problem = next(p for p in info.value.problems if p.kind == "missing-config")
    assert problem.kind == "missing-config"
    assert "m.yaml:" in str(problem)
    assert "app.timeuot" in str(problem), "no suggestion of the near key"
    with pytest.raises(ManifestError, match="run-time configuration"):
        Registry.from_manifest(path)


async def test_handles_of_wrapped_entries_drain_too(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    text = manifest().replace(
        "    default: true\n", "    default: true\n    telemetry: {metrics: true}\n", 1
    )
    write(path, text)
    registry = Registry.from_manifest(path, hot_reload=True)
    await registry.start()
    try:
        assert registry.metadata("a").wrapped, "the entry has no boundary proxy"
        handle = registry.get(ConfigStore)
        old = _instance(registry, "a")
        old.gate = asyncio.Event()
        call = asyncio.ensure_future(handle.get("x"))
        await asyncio.sleep(0.01)
        write(path, text.replace("label: one", "label: two"))
        reloading = asyncio.ensure_future(registry.reload(drain_timeout=10))
        await asyncio.sleep(0.05)
        assert not old.closed, "a boundary-wrapped adapter was closed under a call"
        old.gate.set()
        assert await call == "one"
        assert (await reloading).rebuilt == ("a",)
        assert not old.closed_while_busy
    finally:
        await registry.aclose()


def test_a_reloader_needs_a_registry_built_from_a_manifest() -> None:
    with pytest.raises(ValueError, match="needs a registry built from a manifest"):
        Reloader(Registry())


def test_sighup_is_skipped_with_a_warning_in_a_loop_outside_the_main_thread(
    registry: Registry,
) -> None:
    import threading

    errors: list[BaseException] = []

    def in_thread() -> None:
        async def scenario() -> None:
            reloader = Reloader(registry, watch_files=False, sighup=True)
            await reloader.start()  # signal handlers only work in the main thread
            try:
                assert reloader._signal_loop is None
            finally:
                await reloader.aclose()

        try:
            asyncio.run(scenario())
        except BaseException as exc:  # reported to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(30)
    assert errors == []
