"""``portfolio-core health FILE``: build, start, ping every adapter, measure every
projection's lag (the ``projections:`` section), stop."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from portfolio_core._commands._manifest import add_manifest_arguments, overrides_of, report
from portfolio_core.boundary.health import HealthAggregator
from portfolio_core.manifest import ManifestError
from portfolio_core.registry import Registry

if TYPE_CHECKING:
    from portfolio_core.registry import Registry


def configure(parser: argparse.ArgumentParser) -> None:
    add_manifest_arguments(parser)
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per ping")


async def _check(args: argparse.Namespace) -> int:
    from portfolio_core.manifest import plan
    from portfolio_core.ports.errors import InvalidInputError
    from portfolio_core.runtime import Projections, ProjectionsConfig

    overrides = overrides_of(args)
    section = plan(args.file, profile=args.profile, overrides=overrides).sections.get("projections")
    registry = Registry.from_manifest(args.file, profile=args.profile, overrides=overrides)
    try:
        projections = Projections(
            registry, section if isinstance(section, ProjectionsConfig) else None
        )
    except InvalidInputError as exc:
        await registry.aclose()
        print(f"portfolio-core health: {exc}", file=sys.stderr)
        return 1
    aggregator = HealthAggregator(timeout=args.timeout)
    for name in registry.names():
        aggregator.add(name, registry.metadata(name).port.key)
    registry.report_health_to(aggregator)
    try:
        try:
            await registry.start()
        except Exception as exc:
            return _start_failed(registry, exc)
        result = await registry.health(timeout=args.timeout)
        lags = await projections.status()
    finally:
        await registry.aclose()
    for name, entry in result.entries.items():
        status = "healthy" if entry.healthy else "UNHEALTHY"
        latency = f" {entry.latency_s * 1000:.1f} ms" if entry.latency_s is not None else ""
        print(f"{name:<20} {status:<9} {entry.detail}{latency}")
    lagging = 0
    for name, found in lags.items():
        label = f"projection {name}"
        if isinstance(found, BaseException):
            lagging += 1
            detail = registry.redact(f"{type(found).__name__}: {found}")
            print(f"{label:<20} {'UNHEALTHY':<9} cannot be measured: {detail}")
            continue
        limit = "" if found.max_healthy_lag is None else f" (at most {found.max_healthy_lag})"
        lagging += not found.healthy
        print(
            f"{label:<20} {'healthy' if found.healthy else 'UNHEALTHY':<9} lag {found.lag}"
            f"{limit}: checkpoint {found.checkpoint}, head {found.head}"
        )
    if result.memory is not None and result.memory.pressure:
        print(f"{'(memory)':<20} {'degraded':<9} {result.memory.reason}")
    healthy = result.healthy and not lagging
    print("overall:", "unhealthy" if lagging else result.status)
    return 0 if healthy else 1


def _start_failed(registry: Registry, error: Exception) -> int:
    """One UNHEALTHY line per entry when starting failed (the registry stopped them all)."""
    from portfolio_core.registry._registry import starting_note

    notes = getattr(error, "__notes__", ())
    failed = next((n for n in registry.names() if starting_note(n) in notes), None)
    detail = registry.redact(f"{type(error).__name__}: {error}")
    for name in registry.names():
        if name == failed:
            print(f"{name:<20} {'UNHEALTHY':<9} start failed: {detail}")
        else:
            print(f"{name:<20} {'UNHEALTHY':<9} not started")
    print("overall: unhealthy")
    return 1


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_check(args))
    except ManifestError as exc:
        return report(exc)
