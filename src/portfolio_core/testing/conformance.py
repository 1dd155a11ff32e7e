"""``portfolio-core conformance --port <key> module:factory``: run the kit against a factory.

Runs the port's contract suite in a throwaway pytest session against the factory (any
callable returning a fresh, empty adapter: a class, a function, a ``functools.partial``) and
prints one line per clause: passed, failed (with the first line of the failure) or skipped
(with the reason). Exit status 0 when no clause failed, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ClauseReport", "bind_suite", "configure", "load_factory", "run", "summarise"]

_TEST_MODULE = """\
from portfolio_core.testing.conformance import bind_suite

TestConformance = bind_suite({port!r}, {factory!r})
"""

_ORDER = {"failed": 0, "xpassed": 1, "passed": 2, "xfailed": 3, "skipped": 4}


def configure(parser: argparse.ArgumentParser) -> None:
    from portfolio_core.ports.catalogue import PORTS

    parser.add_argument(
        "--port", required=True, choices=[p.key for p in PORTS], help="the port's catalogue key"
    )
    parser.add_argument(
        "factory", help="module:attribute of a callable returning a fresh, empty adapter"
    )
    parser.add_argument(
        "--max-examples", type=int, default=None, help="hypothesis examples per property"
    )
    parser.add_argument("-k", dest="keyword", default=None, help="only tests matching (pytest -k)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON lines")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show pytest's own output"
    )


def load_factory(reference: str) -> Callable[..., Any]:
    """Import ``module:attribute`` (dotted attribute path allowed); the current directory is
    importable, as with ``python -m``. Raises ``ValueError`` with a readable message."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{reference!r} is not of the form module:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise ValueError(f"{reference} is not callable; it must return a fresh adapter")
    return target  # type: ignore[no-any-return]


def bind_suite(port: str, factory_reference: str) -> type:
    """A collected test class: the port's suite with ``make_adapter`` returning the factory."""
    import pytest

    from portfolio_core.testing.contracts import suite_for

    suite = suite_for(port)
    factory = load_factory(factory_reference)

    def make_adapter(self: object) -> Callable[..., Any]:
        return factory

    return type(
        "TestConformance",
        (suite,),
        {"make_adapter": pytest.fixture(make_adapter), "__module__": "test_conformance"},
    )


class ClauseReport:
    """One clause's outcome over all its tests (parametrized cases included)."""

    def __init__(self, clause: str, text: str) -> None:
        self.clause = clause
        self.text = text
        self.outcomes: list[tuple[str, str]] = []

    @property
    def outcome(self) -> str:
        kinds = {o for o, _ in self.outcomes}
        for kind in ("failed", "xpassed"):
            if kind in kinds:
                return kind
        if "passed" in kinds:
            return "passed"
        return "xfailed" if "xfailed" in kinds else "skipped"

    @property
    def detail(self) -> str:
        wanted = self.outcome
        found = next((d for o, d in self.outcomes if o == wanted and d), "")
        prefix = f"[clause {self.clause}] "
        return found.removeprefix(prefix)


def summarise(outcomes: list[Any]) -> list[ClauseReport]:
    """Group kit outcomes (``plugin.ClauseOutcome``) by clause, failures first."""
    reports: dict[str, ClauseReport] = {}
    for o in outcomes:
        report = reports.setdefault(o.clause, ClauseReport(o.clause, o.text))
        report.outcomes.append((o.outcome, o.detail))
    return sorted(reports.values(), key=lambda r: (_ORDER.get(r.outcome, 9), r.clause))


class _Capture:
    def __init__(self) -> None:
        self.config: Any = None

    def pytest_configure(self, config: Any) -> None:
        self.config = config


def run(args: argparse.Namespace) -> int:
    import pytest

    from portfolio_core.testing.contracts import suite_for
    from portfolio_core.testing.plugin import kit_session

    try:
        suite_for(args.port)
        load_factory(args.factory)
    except (LookupError, ValueError) as exc:
        print(f"portfolio-core conformance: {exc}", file=sys.stderr)
        return 2
    capture = _Capture()
    with tempfile.TemporaryDirectory(prefix="portfolio-core-conformance-") as tmp:
        path = Path(tmp) / "test_conformance.py"
        path.write_text(_TEST_MODULE.format(port=args.port, factory=args.factory))
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        pytest_args = [
            str(path),
            "-c",
            str(ini),
            "--rootdir",
            tmp,
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=short",
        ]
        if args.max_examples:
            pytest_args += ["--kit-max-examples", str(args.max_examples)]
        if args.keyword:
            pytest_args += ["-k", args.keyword]
        output = io.StringIO()
        redirect = contextlib.nullcontext() if args.verbose else contextlib.redirect_stdout(output)
        with redirect:
            status = pytest.main(pytest_args, plugins=[capture])
    session = kit_session(capture.config) if capture.config is not None else None
    reports = summarise(list(session.outcomes.values())) if session else []
    if not reports:
        print(output.getvalue())
        print("portfolio-core conformance: no clause ran", file=sys.stderr)
        return 1
    adapter, declared = (
        next(iter(session.adapters.values()), ("?", frozenset())) if session else ("?", frozenset())
    )
    failed = any(r.outcome in ("failed", "xpassed") for r in reports)
    if args.json:
        for r in reports:
            print(
                json.dumps(
                    {"clause": r.clause, "outcome": r.outcome, "detail": r.detail, "text": r.text}
                )
            )
    else:
        print(f"portfolio-core conformance: port {args.port}, factory {args.factory}")
        print(f"adapter: {adapter}")
        print(f"capabilities: {', '.join(sorted(declared)) or '(none declared)'}")
        for r in reports:
            line = f"  {r.outcome.upper():8} {r.clause}"
            if r.detail:
                line += f" - {r.detail}"
            print(line)
        counts: dict[str, int] = {}
        for r in reports:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        print(
            f"{len(reports)} clauses: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        )
    if status not in (0, 1) or (status == 1 and not failed):
        print(output.getvalue())
        return 1
    return 1 if failed else 0
