"""The ``portfolio-core`` command line.

Each subcommand lives with the code it drives and is imported only when run, so
``portfolio-core --help`` stays fast. A subcommand module exposes
``configure(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

__all__ = ["COMMANDS", "main"]


class _Command(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: name -> (one-line help, module implementing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "run the offline end-to-end demo (router, cache, event store, pipeline, agent)",
        "portfolio_core._commands.demo",
    ),
    "ports": ("list the ports with a one-line summary each", "portfolio_core._commands.ports"),
    "conformance": (
        "run the conformance kit against an adapter factory; per-clause report",
        "portfolio_core.testing.conformance",
    ),
    "worker": (
        "run the jobs of a manifest's job queue: handlers by task name, SIGTERM-safe",
        "portfolio_core._commands.worker",
    ),
    "adapters": (
        "list installed adapters per port (entry points)",
        "portfolio_core.manifest._commands.adapters",
    ),
    "check": (
        "validate and wire a manifest; list every problem (exit 1)",
        "portfolio_core.manifest._commands.check",
    ),
    "describe": (
        "show a manifest's resolved wiring and where each value came from",
        "portfolio_core.manifest._commands.describe",
    ),
    "health": (
        "wire a manifest, start it and ping every adapter",
        "portfolio_core.manifest._commands.health",
    ),
    "migrate": (
        "print a manifest upgraded to the current schema_version",
        "portfolio_core.manifest._commands.migrate",
    ),
    "serve": (
        "serve a manifest's async ports over HTTP and WebSocket (the portal)",
        "portfolio_core._commands.serve",
    ),
    "recover": (
        "salvage a damaged file event log (into a new file) or file cache (damaged entries "
        "moved aside); never deletes anything",
        "portfolio_core._commands.recover",
    ),
}


def _load(module: str) -> _Command:
    return cast(_Command, importlib.import_module(module))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="portfolio-core",
        description="Ports and adapters for LLM and event-driven applications.",
    )
    from portfolio_core import __version__

    parser.add_argument("--version", action="version", version=f"portfolio-core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (help_text, module) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(module).configure(sub_parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return _load(COMMANDS[args.command][1]).run(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
