"""``portfolio-core worker MANIFEST --queue NAME --concurrency N``: run a manifest's jobs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
from typing import Any

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="the manifest wiring the job queue (and the handlers)")
    parser.add_argument("--queue", default="default", help="the queue to work (default: default)")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs at once (default: 4)")
    parser.add_argument("--adapter", help="the job_queue entry to use (default: the default one)")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (its @task handlers register themselves); repeatable",
    )
    parser.add_argument("--lease", type=float, default=30.0, help="lease seconds (default: 30)")
    parser.add_argument("--timeout", type=float, help="per-job timeout in seconds (default: none)")
    parser.add_argument(
        "--grace", type=float, default=30.0, help="seconds running jobs get at shutdown"
    )
    parser.add_argument("--profile", help="manifest profile(s), comma-separated")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress line (default: when stderr is a terminal)",
    )


def _worker_section(wiring: Any) -> Any:
    from portfolio_core.worker._config import WorkerConfig

    plan = wiring.plan
    section = plan.sections.get("worker") if plan is not None else None
    return section if isinstance(section, WorkerConfig) else WorkerConfig()


async def _serve(args: argparse.Namespace) -> int:
    from portfolio_core.manifest import ManifestError, load
    from portfolio_core.ports.job_queue import JobQueue
    from portfolio_core.registry import Registry
    from portfolio_core.worker import Handlers, Worker, default_handlers
    from portfolio_core.worker._progress import ProgressView
    from portfolio_core.worker._worker import periodic_from

    try:
        wiring = load(args.manifest, profile=args.profile)
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    registry = Registry.from_wiring(wiring)
    try:
        section = _worker_section(wiring)
        for module in [*section.imports, *args.imports]:
            importlib.import_module(module)
        handlers = Handlers().merged(default_handlers)
        handlers.register_paths(section.handlers)
        periodic = periodic_from(
            [p.model_dump(exclude_none=True) for p in section.periodic], args.queue
        )
        await registry.start()
        queue = registry.get(JobQueue, args.adapter)
        worker = Worker(
            queue,
            handlers,
            queue_name=args.queue,
            concurrency=args.concurrency,
            lease=args.lease,
            job_timeout=args.timeout,
            grace=args.grace,
            periodic=periodic,
        )
    except Exception as exc:
        print(f"worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        await registry.aclose()
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, worker.stop)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    view = asyncio.ensure_future(ProgressView(worker).run()) if show else None
    try:
        await worker.run()
    finally:
        if view is not None:
            view.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await view
        await registry.aclose()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        print("worker: --concurrency must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args))
