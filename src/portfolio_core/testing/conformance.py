"""The engine of ``portfolio-core conformance --port <key> module:factory``.

``preflight`` checks, before any clause runs, that the factory imports, makes an adapter
and that this adapter has the port's members; ``run_suite`` then runs the port's contract
suite in a throwaway pytest session against the factory (any callable returning a fresh,
empty adapter: a class, a function, a ``functools.partial``) and groups the outcomes per
clause. The command line (``portfolio_core._commands.conformance``) prints them.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ClauseReport",
    "SuiteRun",
    "bind_suite",
    "load_factory",
    "preflight",
    "run_suite",
    "summarise",
]

_TEST_MODULE = """\
from portfolio_core.testing.conformance import bind_suite

TestConformance = bind_suite({port!r}, {factory!r})
"""

_ORDER = {"failed": 0, "xpassed": 1, "passed": 2, "xfailed": 3, "skipped": 4}


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


def preflight(port: str, factory_reference: str) -> None:
    """Check what must hold before a clause can mean anything: ``port`` names a suite, the
    factory imports and makes an adapter (started, then closed again), and that adapter has
    every member of the port's protocol.

    Raises ``ValueError`` with one readable message naming what is wrong (and, for an adapter
    of another port, the ``--port`` it fits).
    """
    from portfolio_core.ports.catalogue import PORTS, port_by_key
    from portfolio_core.ports.introspection import check_class, check_instance
    from portfolio_core.testing.clock import FakeClock
    from portfolio_core.testing.contracts import suite_for
    from portfolio_core.testing.loop import LoopRunner, close_adapter, open_adapter

    try:
        suite_for(port)
    except LookupError as exc:
        raise ValueError(str(exc)) from None
    factory = load_factory(factory_reference)
    protocol = port_by_key(port).protocol
    with LoopRunner() as runner:
        try:
            adapter = runner.run(open_adapter(factory, clock=FakeClock()))
        except Exception as exc:
            raise ValueError(
                f"the factory {factory_reference} raised {type(exc).__name__}: {exc} "
                "(it must return a fresh, empty adapter when called with no arguments)"
            ) from exc
        try:
            problems = check_class(type(adapter), protocol) + check_instance(adapter, protocol)
            if problems:
                fits = [
                    p.key
                    for p in PORTS
                    if p.key != port
                    and not check_class(type(adapter), p.protocol)
                    and not check_instance(adapter, p.protocol)
                ]
                hint = (
                    f"; it fits --port {' or --port '.join(fits)}"
                    if fits
                    else f"; is --port {port} the port you meant?"
                )
                raise ValueError("; ".join(problems) + hint)
        finally:
            with contextlib.suppress(Exception):
                runner.run(close_adapter(adapter))


@dataclass
class SuiteRun:
    """What one conformance session produced."""

    reports: list[ClauseReport]
    adapter: str
    capabilities: frozenset[str]
    status: int
    output: str

    @property
    def failed(self) -> bool:
        """Whether any clause failed (or an expected failure passed)."""
        return any(r.outcome in ("failed", "xpassed") for r in self.reports)


def run_suite(
    port: str,
    factory_reference: str,
    *,
    max_examples: int | None = None,
    keyword: str | None = None,
    verbose: bool = False,
) -> SuiteRun:
    """Run ``port``'s contract suite against the factory in a throwaway pytest session.

    ``status`` is pytest's exit status; ``output`` is pytest's own output (empty with
    ``verbose``, where it went to stdout). Call ``preflight`` first for readable errors.
    """
    import pytest

    from portfolio_core.testing.plugin import kit_session

    capture = _Capture()
    with tempfile.TemporaryDirectory(prefix="portfolio-core-conformance-") as tmp:
        path = Path(tmp) / "test_conformance.py"
        path.write_text(_TEST_MODULE.format(port=port, factory=factory_reference))
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
        if max_examples:
            pytest_args += ["--kit-max-examples", str(max_examples)]
        if keyword:
            pytest_args += ["-k", keyword]
        output = io.StringIO()
        redirect = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(output)
        with redirect:
            status = pytest.main(pytest_args, plugins=[capture])
    session = kit_session(capture.config) if capture.config is not None else None
    reports = summarise(list(session.outcomes.values())) if session else []
    adapter, declared = (
        next(iter(session.adapters.values()), ("?", frozenset())) if session else ("?", frozenset())
    )
    return SuiteRun(reports, adapter, declared, int(status), output.getvalue())
