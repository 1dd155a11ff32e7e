"""The registry: typed lookup, metadata, capabilities, health, counters, lifecycle, reload."""

from __future__ import annotations

import asyncio
import gc
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.manifest import ManifestError
from portfolio_core.ports import Cache, CacheCapability, EventStore, NotFoundError
from portfolio_core.registry import Registry
from tests.manifest import fakes

F = "tests.manifest.fakes"

MANIFEST = f"""
schema_version: 1
adapters:
  persistence:
    port: cache
    adapter: {F}:DictCache
    config: {{namespace: persistence}}
  sessions:
    port: cache
    adapter: {F}:TTLCache
    default: true
    config: {{namespace: sessions}}
    uses: {{backing: persistence}}
  front:
    port: cache
    adapter: {F}:DictCache
    config: {{namespace: front}}
    uses: {{backing: sessions}}
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(textwrap.dedent(MANIFEST))
    return path


def _replace_in(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


@pytest.fixture(autouse=True)
def _events() -> None:
    fakes.EVENTS.clear()


async def test_typed_lookup_default_and_named(manifest: Path) -> None:
    registry = Registry.from_manifest(manifest, environ={})
    try:
        default: Cache = registry.get(Cache)
        assert default is registry.get(Cache, "sessions")
        assert registry.get(Cache, "front").backing is default  # type: ignore[attr-defined]
        with pytest.raises(NotFoundError, match="no Cache adapter named 'nope'"):
            registry.get(Cache, "nope")
        with pytest.raises(NotFoundError, match="no EventStore adapter"):
            registry.get(EventStore)
    finally:
        await registry.aclose()


async def test_several_without_default_is_a_clear_lookup_error(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"schema_version: 1\nadapters:\n  a: {{port: cache, adapter: '{F}:DictCache'}}\n"
        f"  b: {{port: cache, adapter: '{F}:DictCache'}}\n"
    )
    registry = Registry.from_manifest(path, environ={})
    with pytest.raises(NotFoundError, match=r"several Cache adapters are registered \(a, b\)"):
        registry.get(Cache)
    await registry.aclose()


async def test_metadata_capabilities_and_find(manifest: Path) -> None:
    registry = Registry.from_manifest(manifest, environ={})
    info = registry.metadata("sessions")
    assert info.port.key == "cache"
    assert info.default
    assert info.adapter_class is fakes.TTLCache
    assert info.uses == {"backing": "persistence"}
    assert info.location.endswith("app.yaml:8:3")
    assert registry.capabilities("sessions") == {"cache.bounded", "cache.ttl"}
    found = registry.find_by_capability(Cache, CacheCapability.TTL)
    assert list(found) == ["sessions"]
    assert registry.names(Cache) == ["persistence", "sessions", "front"]
    await registry.aclose()


async def test_lifecycle_start_in_dependency_order_stop_in_reverse(manifest: Path) -> None:
    async with Registry.from_manifest(manifest, environ={}) as registry:
        assert fakes.EVENTS == ["start persistence", "start sessions", "start front"]
        assert registry.get(Cache, "front").started  # type: ignore[attr-defined]
    assert fakes.EVENTS[3:] == ["stop front", "stop sessions", "stop persistence"]


async def test_a_failing_stop_does_not_skip_the_others(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"schema_version: 1\nadapters:\n"
        f"  a: {{port: cache, adapter: '{F}:DictCache', config: {{namespace: a}}}}\n"
        f"  b: {{port: cache, adapter: '{F}:FailingStop', config: {{namespace: b}}}}\n"
        f"  c: {{port: cache, adapter: '{F}:DictCache', config: {{namespace: c}}}}\n"
    )
    registry = Registry.from_manifest(path, environ={})
    await registry.start()
    with pytest.raises(ExceptionGroup) as info:
        await registry.aclose()
    assert fakes.EVENTS[-3:] == ["stop c", "stop b", "stop a"]
    assert "stop failed" in str(info.value.exceptions[0])
    await registry.aclose()  # idempotent


async def test_health_pings_with_timeout_and_marks(manifest: Path) -> None:
    registry = Registry.from_manifest(manifest, environ={})
    report = await registry.health()
    assert report.healthy
    slow = registry.get(Cache, "front")

    async def hang() -> None:
        await asyncio.sleep(10)

    slow.ping = hang  # type: ignore[attr-defined]
    report = await registry.health(timeout=0.05)
    assert not report.healthy
    assert "timed out" in report.entries["front"].detail
    registry.mark_unhealthy("sessions", "maintenance")
    report = await registry.health(timeout=0.05)
    assert report.entries["sessions"] == report.entries["sessions"].__class__(
        "sessions", False, "maintenance", None, True
    )
    registry.mark_healthy("sessions")
    assert (await registry.health(timeout=0.05)).entries["sessions"].healthy
    await registry.aclose()


async def test_counts_come_from_the_boundary_proxy(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"schema_version: 1\nadapters:\n"
        f"  raw: {{port: cache, adapter: '{F}:DictCache'}}\n"
        f"  watched: {{port: cache, adapter: '{F}:DictCache', telemetry: {{metrics: true}}}}\n"
    )
    registry = Registry.from_manifest(path, environ={})
    assert registry.get(Cache, "raw") is registry._item("raw").instance  # zero overhead
    watched = registry.get(Cache, "watched")
    await watched.put("k", 1)
    await watched.get("k")
    stats = registry.stats("watched")
    assert stats is not None
    assert (stats.calls, stats.errors) == (2, 0)
    assert registry.stats("raw") is None
    assert registry.metadata("watched").wrapped
    await registry.aclose()


async def test_reload_swaps_atomically_and_keeps_old_wiring_on_failure(
    manifest: Path,
) -> None:
    registry = Registry.from_manifest(manifest, environ={})
    await registry.start()
    old = registry.get(Cache)
    _replace_in(manifest, "namespace: sessions", "namespace: s2")
    await registry.reload()
    new = registry.get(Cache)
    assert new is not old
    assert new.config.namespace == "s2"  # type: ignore[attr-defined]
    assert new.started  # type: ignore[attr-defined]
    assert old.closed  # type: ignore[attr-defined]
    _replace_in(manifest, "port: cache", "port: cahce")
    with pytest.raises(ManifestError, match="did you mean 'cache'"):
        await registry.reload()
    assert registry.get(Cache) is new
    assert not new.closed  # type: ignore[attr-defined]
    await registry.aclose()


def test_failed_load_leaves_nothing_open(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"schema_version: 1\nadapters:\n"
        f"  ok: {{port: cache, adapter: '{F}:DictCache', config: {{namespace: ok}}}}\n"
        f"  bad: {{port: cache, adapter: '{F}:ExplodingCache', uses: {{backing: ok}}}}\n"
    )
    with pytest.raises(ManifestError, match="from_config raised RuntimeError"):
        Registry.from_manifest(path, environ={})
    assert fakes.EVENTS == ["stop ok"]


async def test_hand_built_registry(manifest: Path) -> None:
    registry = Registry()
    cache = fakes.DictCache(fakes.CacheConfig())
    registry.register("main", cache, port=Cache)
    assert registry.get(Cache) is cache
    other = fakes.DictCache(fakes.CacheConfig())
    registry.register("other", other, port=Cache, default=True)
    assert registry.get(Cache) is other
    assert not registry.metadata("main").default
    with pytest.raises(TypeError, match="must be 'async def'"):
        registry.register("sync", fakes.SyncGetCache(fakes.CacheConfig()), port=Cache)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("main", cache, port=Cache)
    await registry.aclose()


def test_unclosed_registry_warns(manifest: Path) -> None:
    registry = Registry.from_manifest(manifest, environ={})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del registry
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)


async def test_health_results_reach_the_boundary_aggregator(manifest: Path) -> None:
    from portfolio_core.boundary.health import HealthAggregator, HealthState

    aggregator = HealthAggregator()
    registry = Registry.from_manifest(manifest, environ={})
    registry.report_health_to(aggregator)
    registry.mark_unhealthy("front", "maintenance")
    await registry.health()
    snapshot = aggregator.snapshot()
    assert snapshot["sessions"].state is HealthState.HEALTHY
    assert snapshot["front"].state is HealthState.UNHEALTHY
    await registry.aclose()


async def test_protection_fallback_is_wired_as_a_dependency(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            schema_version: 1
            adapters:
              primary:
                port: cache
                adapter: {F}:DownCache
                default: true
                protection: {{fallback: {{adapter: backup}}}}
              backup:
                port: cache
                adapter: {F}:DictCache
                config: {{namespace: backup}}
            """
        )
    )
    registry = Registry.from_manifest(path, environ={})
    assert registry.names() == ["backup", "primary"]  # the fallback is built first
    await registry.get(Cache, "backup").put("k", "from backup")
    assert await registry.get(Cache).get("k") == "from backup"
    await registry.aclose()


async def test_short_names_resolve_through_entry_points(
    tmp_path: Path,
    entry_points: Callable[..., None],
) -> None:
    entry_points("cache", "dict", f"{F}:DictCache")
    path = tmp_path / "m.yaml"
    path.write_text("schema_version: 1\nadapters:\n  c: {port: cache, adapter: dict}\n")
    registry = Registry.from_manifest(path, environ={})
    assert isinstance(registry.get(Cache), fakes.DictCache)
    assert registry.metadata("c").adapter_type == "dict"
    await registry.aclose()


async def test_a_reload_is_published_with_the_manifest_diff_and_no_secret(tmp_path: Path) -> None:
    from portfolio_core.boundary.timeline import default_timeline

    path = tmp_path / "app.yaml"
    path.write_text(
        "schema_version: 1\nadapters:\n"
        f"  main:\n    port: cache\n    adapter: '{F}:DictCache'\n"
        "    config: {namespace: one, password: '${secret:env:PW}'}\n"
        f"  gone:\n    port: cache\n    adapter: '{F}:DictCache'\n"
    )
    environ = {"PW": "first-password-value"}
    registry = Registry.from_manifest(path, environ=environ)
    await registry.start()
    timeline = default_timeline()
    last = timeline.last_id
    environ["PW"] = "second-password-value"
    path.write_text(
        "schema_version: 1\nadapters:\n"
        f"  main:\n    port: cache\n    adapter: '{F}:DictCache'\n"
        "    config: {namespace: two, password: '${secret:env:PW}'}\n"
        f"  added:\n    port: cache\n    adapter: '{F}:DictCache'\n"
    )
    await registry.reload()
    (event,) = [e for e in timeline.since(last) if e.kind == "reload"]
    assert event.title == "reloaded app.yaml: 1 added, 1 removed, 1 changed"
    assert [a["entry"] for a in event.data["added"]] == ["added"]
    assert [r["entry"] for r in event.data["removed"]] == ["gone"]
    (changed,) = event.data["changed"]
    assert changed["entry"] == "main"
    assert changed["location"].endswith("app.yaml:3:3")
    fields = {f["path"]: (f["old"], f["new"]) for f in changed["fields"]}
    assert fields["config.namespace"] == ("'one'", "'two'")
    assert fields["config.password"] == ("'**********'", "'**********'")  # changed, not shown
    assert "password-value" not in repr(event)

    last = timeline.last_id
    path.write_text(path.read_text().replace("port: cache", "port: cahce", 1))
    with pytest.raises(ManifestError):
        await registry.reload()
    (failed,) = [e for e in timeline.since(last) if e.kind == "reload"]
    assert failed.severity == "error"
    assert "previous wiring stays" in failed.title
    assert "did you mean 'cache'" in failed.detail
    await registry.aclose()
