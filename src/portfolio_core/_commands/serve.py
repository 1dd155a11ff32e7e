"""``portfolio-core serve MANIFEST``: serve a manifest's async ports over HTTP and WebSocket."""

from __future__ import annotations

import argparse
import json
import os
import sys

from portfolio_core.manifest._commands import add_manifest_arguments, overrides_of, report
from portfolio_core.manifest.errors import ManifestError


def configure(parser: argparse.ArgumentParser) -> None:
    add_manifest_arguments(parser)
    parser.add_argument("--host", default=None, help="interface to listen on (portal.host)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (portal.port)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (portal.workers)"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level",
    )


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from portfolio_core.portal import PortalConfig
        from portfolio_core.portal._server import _ENV, serve, uvicorn_options
    except ImportError as exc:
        print(
            f"portfolio-core serve needs the portal extra ({exc.name} is missing): "
            "pip install 'portfolio-core[portal]'",
            file=sys.stderr,
        )
        return 2
    from pydantic import ValidationError

    from portfolio_core.manifest import build, plan
    from portfolio_core.registry import Registry

    try:
        overrides = overrides_of(args)
        planned = plan(args.file, profile=args.profile, overrides=overrides)
    except ManifestError as exc:
        return report(exc)
    section = planned.sections.get("portal")
    config = section if isinstance(section, PortalConfig) else PortalConfig()
    changes = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
    try:
        config = PortalConfig.model_validate({**config.model_dump(), **changes})
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            print(f"portfolio-core serve: {error['msg']}", file=sys.stderr)
        return 2
    if config.workers > 1:
        os.environ[_ENV] = json.dumps(
            {
                "file": os.path.abspath(args.file),
                "profile": args.profile,
                "overrides": overrides,
                "config": json.loads(config.model_dump_json(round_trip=True)),
            }
        )
        options = uvicorn_options(config, args.log_level)
        uvicorn.run(
            "portfolio_core.portal._server:create_app",
            factory=True,
            workers=config.workers,
            **options,
        )
        return 0
    try:
        registry = Registry.from_wiring(build(planned))
    except ManifestError as exc:
        return report(exc)
    serve(registry, config, log_level=args.log_level)
    return 0
