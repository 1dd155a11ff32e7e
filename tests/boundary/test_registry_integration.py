"""The boundary seen through the registry and ``portfolio-core health``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from portfolio_core.boundary.health import HealthAggregator, HealthChange, HealthState
from portfolio_core.cli import main
from portfolio_core.ports import Cache, UnavailableError
from portfolio_core.registry import Registry
from tests.manifest.fakes import DictCache

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
