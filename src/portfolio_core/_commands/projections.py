"""``portfolio-core projections FILE``: run the manifest's projections (its ``projections:``
section) until SIGTERM or SIGINT; ``--status`` prints each one's lag and exits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from portfolio_core._commands._manifest import add_manifest_arguments, overrides_of, report
from portfolio_core.manifest import ManifestError

if TYPE_CHECKING:
    from portfolio_core.runtime import Projections
    from portfolio_core.services.projections import ProjectionStatus

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_manifest_arguments(parser)
    parser.add_argument(
        "--status",
        action="store_true",
        help="print each projection's checkpoint, head and lag, then exit (1 if one lags)",
    )


def _print_status(
    found: Mapping[str, ProjectionStatus | BaseException], redact: Callable[[str], str]
) -> int:
    """One line per projection; 1 when one lags beyond its limit or cannot be measured."""
    failing = 0
    for name, status in found.items():
        if isinstance(status, BaseException):
            failing += 1
            print(f"{name}: cannot be measured: {redact(f'{type(status).__name__}: {status}')}")
            continue
        failing += not status.healthy
        mark = "" if status.healthy else f"  UNHEALTHY (more than {status.max_healthy_lag})"
        print(f"{name}: checkpoint {status.checkpoint}, head {status.head}, lag {status.lag}{mark}")
    return 1 if failing else 0


async def _run(args: argparse.Namespace) -> int:
    from portfolio_core.manifest import load
    from portfolio_core.registry import Registry
    from portfolio_core.runtime import Projections, ProjectionsConfig

    wiring = load(args.file, profile=args.profile, overrides=overrides_of(args))
    registry = Registry.from_wiring(wiring)
    section = wiring.plan.sections.get("projections") if wiring.plan is not None else None
    try:
        if not isinstance(section, ProjectionsConfig) or not section.root:
            print("portfolio-core projections: the manifest has no projections:", file=sys.stderr)
            return 1
        projections = Projections(registry, section)
        await registry.start()
    except Exception as exc:  # a missing entry or handler, a store that cannot start
        await registry.aclose()
        print(f"portfolio-core projections: {registry.redact(str(exc))}", file=sys.stderr)
        return 1
    try:
        if args.status:
            return _print_status(await projections.status(), registry.redact)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stopping.set)
        await projections.start()
        print(
            f"running {len(projections)} projection(s): {', '.join(projections.runners)}",
            file=sys.stderr,
        )
        failed = asyncio.ensure_future(_first_failure(projections))
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({failed, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (failed, stop):
            task.cancel()
        await projections.stop()
        broken = [r for r in projections.runners.values() if r.error is not None]
        for runner in broken:
            print(
                f"projection {runner.name} stopped: {type(runner.error).__name__}: "
                f"{registry.redact(str(runner.error))}",
                file=sys.stderr,
            )
        return 1 if broken else 0
    finally:
        await registry.aclose()


async def _first_failure(projections: Projections) -> None:
    """Return when any runner has failed (its handler raised past the error policy): a
    runner's ``wait_until`` for a position never reached returns only by raising that."""
    waits = [
        asyncio.ensure_future(runner.wait_until(_NEVER)) for runner in projections.runners.values()
    ]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


_NEVER = 2**63 - 1
"""A position no log reaches."""


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except ManifestError as exc:
        return report(exc)
