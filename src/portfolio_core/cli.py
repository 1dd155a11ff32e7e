"""The ``portfolio-core`` command line.

Every subcommand is one module of ``portfolio_core._commands``, imported only when run,
so ``portfolio-core --help`` stays fast. A subcommand module exposes
``configure(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``.

A command whose optional packages are not installed exits with status 2 and one line naming
the extra to install (``pip install 'portfolio-core[testing]'``), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

__all__ = ["COMMANDS", "Command", "main"]


class _CommandModule(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its one-line help, the module implementing it and the extra it needs
    beyond the base install (``None``: none)."""

    help: str
    module: str
    extra: str | None = None


#: name -> the subcommand
COMMANDS: dict[str, Command] = {
    "demo": Command(
        "run the offline end-to-end demo (router, cache, event store, pipeline, agent)",
        "portfolio_core._commands.demo",
    ),
    "ports": Command(
        "list the ports with a one-line summary each", "portfolio_core._commands.ports"
    ),
    "conformance": Command(
        "run the conformance kit against an adapter factory; per-clause report",
        "portfolio_core._commands.conformance",
        extra="testing",
    ),
    "worker": Command(
        "run the jobs of a manifest's job queue: handlers by task name, SIGTERM-safe",
        "portfolio_core._commands.worker",
    ),
    "projections": Command(
        "run a manifest's projections (catch-up, then live) until SIGTERM; --status: their lag",
        "portfolio_core._commands.projections",
    ),
    "adapters": Command(
        "list installed adapters per port (entry points) and the extras they miss",
        "portfolio_core._commands.adapters",
    ),
    "check": Command(
        "validate and wire a manifest; list every problem (exit 1)",
        "portfolio_core._commands.check",
    ),
    "describe": Command(
        "show a manifest's resolved wiring and where each value came from",
        "portfolio_core._commands.describe",
    ),
    "health": Command(
        "wire a manifest, start it and ping every adapter",
        "portfolio_core._commands.health",
    ),
    "migrate": Command(
        "print a manifest upgraded to the current schema_version",
        "portfolio_core._commands.migrate",
    ),
    "serve": Command(
        "serve a manifest's async ports over HTTP and WebSocket (the portal)",
        "portfolio_core._commands.serve",
        extra="portal",
    ),
    "recover": Command(
        "salvage a damaged file event log or config log (into a new file) or file cache "
        "(damaged entries moved aside); never deletes anything",
        "portfolio_core._commands.recover",
    ),
}


def _load(module: str) -> _CommandModule:
    return cast(_CommandModule, importlib.import_module(module))


def _missing_package(name: str, exc: ModuleNotFoundError) -> int:
    """Report a package the command needs and is not installed: one line, status 2.
    Re-raises when the missing module is part of this library (a bug, not an install)."""
    missing = exc.name or ""
    if not missing or missing.split(".")[0] == "portfolio_core":
        raise exc
    from portfolio_core.manifest.extras import extra_providing, install_command

    extra = extra_providing(missing) or COMMANDS[name].extra
    if extra is None:
        print(
            f"portfolio-core {name}: {exc}: install the package that provides it", file=sys.stderr
        )
    else:
        print(
            f"portfolio-core {name}: needs the {extra!r} extra ({exc}): {install_command([extra])}",
            file=sys.stderr,
        )
    return 2


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
    for name, command in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        if name == chosen:
            try:
                _load(command.module).configure(sub_parser)
            except ModuleNotFoundError as exc:
                return _missing_package(name, exc)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _load(COMMANDS[args.command].module).run(args)
    except ModuleNotFoundError as exc:
        return _missing_package(args.command, exc)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
