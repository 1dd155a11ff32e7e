"""``portfolio-core serve MANIFEST``: serve a manifest's async ports over HTTP and WebSocket,
reloading the manifest while serving (file change, SIGHUP, ``POST /admin/reload``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from portfolio_core._commands._manifest import add_manifest_arguments, overrides_of, report
from portfolio_core.manifest import ManifestError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from portfolio_core.portal import PortalConfig
    from portfolio_core.registry import Registry
    from portfolio_core.runtime import ProjectionsConfig

_ENV = "PORTFOLIO_CORE_PORTAL_MANIFEST"
"""How ``--workers N`` passes the manifest to each worker process (JSON)."""


def configure(parser: argparse.ArgumentParser) -> None:
    add_manifest_arguments(parser)
    parser.add_argument("--host", default=None, help="interface to listen on (portal.host)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (portal.port)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (portal.workers)"
    )
    parser.add_argument(
        "--no-reload",
        action="store_true",
        help="do not watch the manifest nor reload on SIGHUP (portal.reload.files/sighup)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level",
    )


def reloading_app(
    registry: Registry,
    config: PortalConfig,
    *,
    sighup: bool = True,
    projections: ProjectionsConfig | None = None,
) -> Starlette:
    """The portal's application over ``registry`` (built from a manifest with
    ``hot_reload=True``): its lifespan starts the registry, then a
    `Reloader` watching the manifest and SIGHUP as
    ``config.reload`` says, and closes both on shutdown. The manifest's ``projections``
    get a console panel (their lag, read from the stores); the portal does not run them
    (``portfolio-core projections`` does)."""
    from portfolio_core.portal import Portal
    from portfolio_core.runtime import Projections, Reloader

    settings = config.reload

    @contextlib.asynccontextmanager
    async def reloader() -> AsyncIterator[None]:
        watcher = Reloader(
            registry,
            watch_files=settings.files,
            sighup=settings.sighup and sighup,
            debounce=settings.debounce,
            drain_timeout=settings.drain_timeout,
        )
        await watcher.start()
        try:
            yield
        finally:
            await watcher.aclose()

    companions: list[Callable[[], contextlib.AbstractAsyncContextManager[None]]] = (
        [reloader] if (settings.files or settings.sighup) else []
    )
    if projections is not None and projections.root:
        shown = Projections(registry, projections)

        @contextlib.asynccontextmanager
        async def panel() -> AsyncIterator[None]:
            shown.register_panel()
            try:
                yield
            finally:
                shown.unregister_panel()

        companions.append(panel)
    return Portal(registry, config).app(manage_registry=True, companions=companions)


def create_app() -> Starlette:
    """The application of one worker of ``portfolio-core serve --workers N``: each worker
    wires the manifest named in the environment itself (state is shared through the
    adapters' own servers, never between workers) and watches it; SIGHUP goes to uvicorn's
    supervisor, which restarts the workers."""
    from portfolio_core.portal import PortalConfig

    spec = json.loads(os.environ[_ENV])
    registry, config, projections = _wire(spec["file"], spec.get("profile"), spec.get("overrides"))
    if spec.get("config"):
        config = PortalConfig.model_validate(spec["config"])
    return reloading_app(registry, config, sighup=False, projections=projections)


def _projections_of(sections: Mapping[str, Any]) -> ProjectionsConfig | None:
    from portfolio_core.runtime import ProjectionsConfig

    section = sections.get("projections")
    return section if isinstance(section, ProjectionsConfig) else None


def _wire(
    path: str, profile: str | None, overrides: Mapping[str, Any] | None
) -> tuple[Registry, PortalConfig, ProjectionsConfig | None]:
    from portfolio_core.manifest import plan
    from portfolio_core.portal import PortalConfig
    from portfolio_core.registry import Registry

    planned = plan(path, profile=profile, overrides=overrides)
    section = planned.sections.get("portal")
    config = section if isinstance(section, PortalConfig) else PortalConfig()
    registry = Registry.from_manifest(path, profile=profile, overrides=overrides, hot_reload=True)
    return registry, config, _projections_of(planned.sections)


def run(args: argparse.Namespace) -> int:
    # without the portal extra these raise ModuleNotFoundError, which the command line
    # reports as one line naming the extra
    import uvicorn
    from pydantic import ValidationError

    from portfolio_core.manifest import plan
    from portfolio_core.portal import PortalConfig
    from portfolio_core.portal._server import uvicorn_options

    try:
        overrides = overrides_of(args)
        planned = plan(args.file, profile=args.profile, overrides=overrides)
    except ManifestError as exc:
        return report(exc)
    section = planned.sections.get("portal")
    config = section if isinstance(section, PortalConfig) else PortalConfig()
    changes: dict[str, Any] = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
    if args.no_reload:
        changes["reload"] = {**config.reload.model_dump(), "files": False, "sighup": False}
    try:
        config = PortalConfig.model_validate({**config.model_dump(), **changes})
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            print(f"portfolio-core serve: {error['msg']}", file=sys.stderr)
        return 2
    options = uvicorn_options(config, args.log_level)
    if config.workers > 1:
        os.environ[_ENV] = json.dumps(
            {
                "file": os.path.abspath(args.file),
                "profile": args.profile,
                "overrides": overrides,
                "config": json.loads(config.model_dump_json(round_trip=True)),
            }
        )
        uvicorn.run(
            "portfolio_core._commands.serve:create_app",
            factory=True,
            workers=config.workers,
            **options,
        )
        return 0
    from portfolio_core.registry import Registry

    try:
        registry = Registry.from_manifest(
            args.file, profile=args.profile, overrides=overrides, hot_reload=True
        )
    except ManifestError as exc:
        return report(exc)
    from portfolio_core.ports.errors import InvalidInputError

    try:
        app = reloading_app(registry, config, projections=_projections_of(planned.sections))
    except InvalidInputError as exc:  # a projection names a missing entry or handler
        print(f"portfolio-core serve: {exc}", file=sys.stderr)
        asyncio.run(registry.aclose())
        return 1
    uvicorn.run(app, **options)
    return 0
