"""The boundary seen through the registry and ``portfolio-core health``."""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.boundary import boundary_of, wrap
from portfolio_core.boundary.health import HealthAggregator, HealthChange, HealthState
from portfolio_core.cli import main
from portfolio_core.ports import Cache, UnavailableError, port_by_key
from portfolio_core.registry import EntryHealth, Registry
from tests.manifest.fakes import CacheConfig, DictCache
from tests.support.boundary import OPEN_UNTIL, FakeClock, ScriptedCache

F = "tests.manifest.fakes"
HERE = "tests.boundary.test_registry_integration"


class SickCache(DictCache):
    """Healthy until ``SickCache.sick`` is set."""

    sick = True

    async def ping(self) -> None:
        if SickCache.sick:
            raise UnavailableError("disk on fire")


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            schema_version: 1
            adapters:
              sessions:
                port: cache
                adapter: {F}:DictCache
                default: true
                telemetry: {{}}
                protection:
                  circuit_breaker: {{fail_max: 3}}
              sick:
                port: cache
                adapter: {HERE}:SickCache
            """
        )
    )
    return path


async def test_registry_reports_performance_of_wrapped_adapters(manifest: Path) -> None:
    async with Registry.from_manifest(manifest, environ={}) as registry:
        cache = registry.get(Cache)
        await cache.put("k", 1)
        for _ in range(4):
            await cache.get("k")
        report = {(p.adapter, p.method): p for p in registry.performance()}
    assert report[("sessions", "get")].calls == 4
    assert report[("sessions", "put")].calls == 1
    assert report[("sessions", "get")].p99 >= report[("sessions", "get")].p50 > 0
    assert not [p for p in report.values() if p.adapter == "sick"]


async def test_registry_health_feeds_the_aggregator(manifest: Path) -> None:
    aggregator = HealthAggregator()
    changes: list[HealthChange] = []
    aggregator.add_listener(changes.append)
    async with Registry.from_manifest(manifest, environ={}) as registry:
        for name in registry.names():
            aggregator.add(name, registry.metadata(name).port.key)
        registry.report_health_to(aggregator)
        SickCache.sick = True
        await registry.health(timeout=1)
        assert aggregator.status is HealthState.DEGRADED
        SickCache.sick = False
        await registry.health(timeout=1)
        assert aggregator.status is HealthState.HEALTHY
    assert (changes[-1].name, changes[-1].old, changes[-1].new) == (
        "sick",
        HealthState.UNHEALTHY,
        HealthState.HEALTHY,
    )


def test_health_command_reports_degraded(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    SickCache.sick = True
    try:
        assert main(["health", str(manifest)]) == 1
    finally:
        SickCache.sick = False
    out = capsys.readouterr().out
    assert "overall: degraded" in out
    assert "disk on fire" in out


# -- the circuit breaker's say in health ---------------------------------------------------


class PingedCache(ScriptedCache):
    """A scripted cache whose ping always succeeds (and is counted)."""

    def __init__(self, errors: list[BaseException] | None = None) -> None:
        super().__init__(errors=errors)
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1


def _guarded(cache: object, clock: FakeClock, **breaker: object) -> object:
    return wrap(
        cache,
        port=port_by_key("cache"),
        name="guarded",
        adapter_type="test",
        telemetry=None,
        protection={"circuit_breaker": breaker},
        clock=clock,
    )


async def test_an_open_breaker_makes_the_entry_unhealthy_though_its_ping_succeeds() -> None:
    clock = FakeClock()
    cache = PingedCache(errors=[UnavailableError("down")])
    proxy = _guarded(cache, clock, fail_max=1, reset_timeout=10, success_threshold=2)
    aggregator = HealthAggregator()
    registry = Registry()
    registry.register("guarded", proxy, port=Cache)
    registry.register("plain", DictCache(CacheConfig()), port=Cache)
    registry.report_health_to(aggregator)
    report = await registry.health()
    assert (report.healthy, report.status) == (True, "healthy")
    assert report.entries["guarded"].detail == "ok"

    with pytest.raises(UnavailableError):
        await registry.get(Cache, "guarded").get("k")  # fail_max 1: the breaker opens
    pings = cache.pings
    report = await registry.health()
    guarded = report.entries["guarded"]
    assert cache.pings == pings + 1  # pinged, and the ping succeeded
    assert not guarded.healthy
    assert OPEN_UNTIL.fullmatch(guarded.detail), guarded.detail
    assert guarded.latency_s is not None
    assert (report.healthy, report.status) == (False, "degraded")
    assert report.entries["plain"] == EntryHealth(
        "plain", True, "ok", report.entries["plain"].latency_s
    )
    # the sinks get the same verdict
    seen = aggregator.snapshot()["guarded"]
    assert (seen.state, seen.detail) == (HealthState.UNHEALTHY, guarded.detail)
    assert aggregator.status is HealthState.DEGRADED
    # a mark still overrides the breaker, and clearing it hands the verdict back
    registry.mark_unhealthy("guarded", "maintenance")
    marked = (await registry.health()).entries["guarded"]
    assert (marked.healthy, marked.detail, marked.marked) == (False, "maintenance", True)
    registry.mark_healthy("guarded")
    assert OPEN_UNTIL.fullmatch((await registry.health()).entries["guarded"].detail)

    clock.now += 10
    report = await registry.health()
    assert report.entries["guarded"].detail == (
        "circuit breaker open; reset timeout passed, the next call is admitted as a probe"
    )
    assert not report.entries["guarded"].healthy
    assert boundary_of(proxy).breaker.state == "open"  # type: ignore[union-attr]

    await registry.get(Cache, "guarded").get("k")  # a successful probe: half-open, 1 of 2
    report = await registry.health()
    probing = "circuit breaker half-open; probing one call at a time until 2 in a row succeed"
    assert report.entries["guarded"] == EntryHealth(
        "guarded", True, probing, report.entries["guarded"].latency_s
    )
    assert report.status == "healthy"
    assert aggregator.snapshot()["guarded"].state is HealthState.HEALTHY

    await registry.get(Cache, "guarded").get("k")  # the second success closes it
    report = await registry.health()
    assert report.entries["guarded"].detail == "ok"
    assert report.healthy
    await registry.aclose()


async def test_a_failing_ping_and_an_open_breaker_are_both_reported() -> None:
    clock = FakeClock()
    cache = PingedCache(errors=[UnavailableError("down")])
    proxy = _guarded(cache, clock, fail_max=1, reset_timeout=10)
    registry = Registry()
    registry.register("guarded", proxy, port=Cache)
    with pytest.raises(UnavailableError):
        await proxy.get("k")  # type: ignore[attr-defined]

    async def broken() -> None:
        raise UnavailableError("disk on fire")

    cache.ping = broken  # type: ignore[method-assign]
    report = await registry.health()
    detail = report.entries["guarded"].detail
    breaker_part, ping_part = detail.split("; ping: ")
    assert OPEN_UNTIL.fullmatch(breaker_part), detail
    assert ping_part == "UnavailableError: disk on fire"
    assert report.status == "unhealthy"
    await registry.aclose()


class DownCache(DictCache):
    """Answers its ping, fails every read: what a breaker exists for."""

    async def get(self, key: str) -> Any | None:
        raise UnavailableError("backend down")


class WarmsUpOnStart(DictCache):
    """Reads through its backing cache when started (a warm-up that may fail)."""

    async def start(self) -> None:
        await super().start()
        assert self.backing is not None
        with contextlib.suppress(UnavailableError):
            await self.backing.get("warm-up")


def test_health_command_reports_an_open_breaker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            schema_version: 1
            adapters:
              guarded:
                port: cache
                adapter: {HERE}:DownCache
                protection:
                  circuit_breaker: {{fail_max: 1, reset_timeout: 600}}
              front:
                port: cache
                adapter: {HERE}:WarmsUpOnStart
                uses: {{backing: guarded}}
            """
        )
    )
    assert main(["health", str(path)]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("guarded"))
    assert "UNHEALTHY" in line
    assert "circuit breaker open; calls refused until" in line
    assert "overall: degraded" in out
