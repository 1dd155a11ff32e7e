"""The conformance kit's pytest plugin (``pytest11`` entry point ``portfolio_core.testing.plugin``).

Loaded automatically wherever portfolio-core and pytest are installed, it does nothing to a
test run that uses no `ContractSuite`: it registers its markers,
its command-line options and a few ``kit_*`` fixtures, and its hooks return at once for other
tests. For contract suites it:

* runs ``async def`` tests on the kit's own loop (fixture ``kit_runner``);
* prefixes every failure with the clause it broke (``[clause cache.ttl.expires] ...``);
* refuses, at collection, a suite that deletes a contract test or overrides one without
  ``xfail(strict=True, reason=...)`` (the tamper guard);
* prints, in the terminal summary, each suite's adapter, its declared capabilities and its
  clause counts (the adapters are only known once the fixtures have run, so this cannot be
  the pytest header); ``--kit-report`` lists every clause with its outcome.

Disable it with ``-p no:portfolio_core.testing.plugin``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from portfolio_core.testing.clauses import clause_of
from portfolio_core.testing.clock import FakeClock, FakeWallClock
from portfolio_core.testing.faults import FaultInjector
from portfolio_core.testing.loop import DEFAULT_TIMEOUT, LoopRunner

__all__ = [
    "ClauseOutcome",
    "KitSession",
    "KitSettings",
    "kit_clock",
    "kit_faults",
    "kit_wall_clock",
    "kit_runner",
    "kit_settings",
    "record_adapter",
    "tamper_problems",
]

MARKERS = (
    "kit_clause(id, text): the contract clause a conformance-kit test checks",
    "kit_requires(*capabilities): run only when the adapter declares these capabilities",
    "kit_requires_absent(*capabilities): run only when the adapter declares none of these",
)


@dataclass(frozen=True, slots=True)
class KitSettings:
    """Knobs of one run, from the command line (``--kit-*``)."""

    max_examples: int = 25
    step_count: int = 20
    timeout: float = DEFAULT_TIMEOUT


@dataclass(slots=True)
class ClauseOutcome:
    """What happened to one contract test: ``passed``, ``failed``, ``skipped`` or ``xfailed``."""

    nodeid: str
    suite: str
    clause: str
    text: str
    outcome: str
    detail: str = ""


@dataclass(slots=True)
class KitSession:
    """Everything the kit learnt in one pytest session (read by the summary and the CLI)."""

    outcomes: dict[str, ClauseOutcome] = field(default_factory=dict)
    adapters: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)


_SESSION = pytest.StashKey[KitSession]()
_SETTINGS = pytest.StashKey[KitSettings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("portfolio-core", "portfolio-core conformance kit")
    group.addoption(
        "--kit-max-examples",
        type=int,
        default=None,
        help="hypothesis examples per property and state machine (default 25)",
    )
    group.addoption(
        "--kit-steps",
        type=int,
        default=None,
        help="steps per state-machine example (default 20)",
    )
    group.addoption(
        "--kit-timeout",
        type=float,
        default=None,
        help=f"seconds one async call of a contract test may take (default {DEFAULT_TIMEOUT})",
    )
    group.addoption(
        "--kit-report",
        action="store_true",
        default=False,
        help="list every contract clause with its outcome in the terminal summary",
    )


#: pytest-asyncio's setting that warns when unset; the kit's own tests run on its loop runner
_LOOP_SCOPE = "asyncio_default_fixture_loop_scope"


def _default_loop_scope(config: pytest.Config) -> None:
    """Give pytest-asyncio's fixture loop scope its coming default (``function``) when the
    project did not choose one, so that a third-party suite that only subclasses the kit's
    suites runs without a configuration file and without a deprecation warning. A value
    the project sets (in its configuration or with ``-o``) is kept."""
    try:
        if config.getini(_LOOP_SCOPE):
            return
    except ValueError:  # pytest-asyncio is not installed: nothing to default
        return
    # getini caches what it read; pytest-asyncio reads the value in its own pytest_configure,
    # which runs after this one (tryfirst)
    config._inicache[_LOOP_SCOPE] = "function"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _default_loop_scope(config)
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    defaults = KitSettings()
    config.stash[_SETTINGS] = KitSettings(
        max_examples=config.getoption("kit_max_examples", None) or defaults.max_examples,
        step_count=config.getoption("kit_steps", None) or defaults.step_count,
        timeout=config.getoption("kit_timeout", None) or defaults.timeout,
    )
    session = KitSession()
    config.stash[_SESSION] = session
    config.pluginmanager.register(_Recorder(session), "portfolio_core.testing.recorder")


def kit_session(config: pytest.Config) -> KitSession:
    """The `KitSession` of a run (empty when the plugin is not configured)."""
    return config.stash.get(_SESSION, KitSession())


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def kit_runner(request: pytest.FixtureRequest) -> Iterator[LoopRunner]:
    """The test's private event loop (see `LoopRunner`)."""
    settings = request.config.stash.get(_SETTINGS, KitSettings())
    runner = LoopRunner(timeout=settings.timeout)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def kit_clock() -> FakeClock:
    """A fresh `FakeClock` for the test."""
    return FakeClock()


@pytest.fixture
def kit_wall_clock() -> FakeWallClock:
    """A fresh `FakeWallClock` (starting at the real current time) for the test."""
    return FakeWallClock()


@pytest.fixture
def kit_faults() -> FaultInjector:
    """A fresh, unarmed `FaultInjector` for the test."""
    return FaultInjector()


@pytest.fixture
def kit_settings(request: pytest.FixtureRequest) -> KitSettings:
    """The run's `KitSettings` (hypothesis budget, timeout)."""
    return request.config.stash.get(_SETTINGS, KitSettings())


# -- the tamper guard --------------------------------------------------------------------------


def _is_contract_class(cls: type) -> bool:
    return cls.__dict__.get("kit_contract", False) is True


def _strict_xfail_reason(value: object) -> str | None:
    for mark in getattr(value, "pytestmark", []):
        if getattr(mark, "name", None) != "xfail":
            continue
        reason = mark.kwargs.get("reason", "")
        if mark.kwargs.get("strict") is True and isinstance(reason, str) and reason.strip():
            return reason
    return None


def tamper_problems(cls: type) -> list[str]:
    """Why ``cls`` (a ContractSuite subclass) weakens its contract; empty when it does not.

    A contract test (a ``@clause`` test of a kit contract class) must reach the collected
    class unchanged, or be replaced by a copy marked ``xfail(strict=True, reason=...)``
    (`expected_failure` makes one).
    """
    reference: dict[str, tuple[type, Any]] = {}
    for base in reversed(cls.__mro__):
        if not _is_contract_class(base):
            continue
        for name, value in base.__dict__.items():
            if clause_of(value) is not None:
                reference[name] = (base, value)
    problems = []
    for name, (owner, original) in sorted(reference.items()):
        definer = next(k for k in cls.__mro__ if name in k.__dict__)
        if _is_contract_class(definer):
            continue
        value = definer.__dict__[name]
        found = clause_of(original)
        where = f"{owner.__name__}.{name} (clause {found.id if found else '?'})"
        fix = f"use expected_failure({owner.__name__}.{name}, reason=...) to opt out honestly"
        if value is None or not callable(value):
            problems.append(f"{definer.__name__} deletes the contract test {where}; {fix}")
        elif _strict_xfail_reason(value) is None:
            problems.append(
                f"{definer.__name__} overrides the contract test {where} without "
                f"pytest.mark.xfail(strict=True, reason=...); {fix}"
            )
    return problems


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    if not isinstance(obj, type) or not collector.classnamefilter(name):  # type: ignore[attr-defined]
        return
    from portfolio_core.testing.suite import ContractSuite

    if not issubclass(obj, ContractSuite):
        return
    problems = tamper_problems(obj)
    if problems:
        raise collector.CollectError(
            "portfolio-core conformance kit: tamper guard\n  " + "\n  ".join(problems)
        )


# -- clause-named failures and outcomes --------------------------------------------------------


def _clause_mark(item: pytest.Item) -> tuple[str, str] | None:
    mark = item.get_closest_marker("kit_clause")
    if mark is None or not mark.args:
        return None
    return str(mark.args[0]), str(mark.args[1]) if len(mark.args) > 1 else ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    found = _clause_mark(item)
    if found is None:
        return report
    clause_id, text = found
    report.user_properties.append(("kit_clause", clause_id))
    report.user_properties.append(("kit_clause_text", text))
    if report.failed:
        _name_clause_in(report, clause_id, text)
    return report


def _name_clause_in(report: pytest.TestReport, clause_id: str, text: str) -> None:
    prefix = f"[clause {clause_id}] "
    longrepr = report.longrepr
    if isinstance(longrepr, str):
        report.longrepr = f"{prefix}{text}\n{longrepr}"
        return
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and not str(crash.message).startswith(prefix):
        message = str(crash.message)
        if message.strip().rstrip(":") == "AssertionError" and text:
            message = f"AssertionError: {text}"  # a bare assert says nothing: say the clause
        crash.message = prefix + message
    addsection = getattr(longrepr, "addsection", None)
    if callable(addsection):
        addsection("contract clause broken", f"{clause_id}: {text}" if text else clause_id)
    elif longrepr is None or isinstance(longrepr, tuple):
        report.longrepr = f"{prefix}{text}\n{longrepr or ''}"


def _detail(report: pytest.TestReport) -> str:
    if report.skipped:
        if hasattr(report, "wasxfail"):
            return str(report.wasxfail)
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            return str(longrepr[2]).removeprefix("Skipped: ")
        return str(longrepr)
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr or "").strip().splitlines()[0] if report.longrepr else ""


class _Recorder:
    """Collects clause outcomes into the session's `KitSession` (one per config)."""

    def __init__(self, session: KitSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        clause_id = props.get("kit_clause")
        if clause_id is None or not (report.when == "call" or report.failed or report.skipped):
            return
        previous = self.session.outcomes.get(report.nodeid)
        if previous is not None and previous.outcome == "failed":
            return  # keep the first failure (a call failure over a teardown one)
        if report.skipped:
            outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        elif report.failed:
            outcome = "failed"
        elif hasattr(report, "wasxfail"):
            outcome = "xpassed"
        else:
            outcome = "passed"
        self.session.outcomes[report.nodeid] = ClauseOutcome(
            report.nodeid,
            report.nodeid.rsplit("::", 1)[0],
            str(clause_id),
            str(props.get("kit_clause_text", "")),
            outcome,
            _detail(report) if outcome != "passed" else "",
        )


def record_adapter(node: pytest.Item, adapter: object, declared: frozenset[str]) -> None:
    """Remember which adapter (and capability declaration) a suite ran against."""
    suite = node.nodeid.rsplit("::", 1)[0]
    kind = type(adapter)
    node.config.stash[_SESSION].adapters[suite] = (
        f"{kind.__module__}.{kind.__qualname__}",
        declared,
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is None or not session.outcomes:
        return
    full = bool(config.getoption("kit_report", False))
    tr = terminalreporter
    tr.write_sep("=", "portfolio-core conformance kit")
    by_suite: dict[str, list[ClauseOutcome]] = {}
    for outcome in session.outcomes.values():
        by_suite.setdefault(outcome.suite, []).append(outcome)
    for suite, outcomes in by_suite.items():
        adapter, declared = session.adapters.get(suite, ("(no adapter was created)", frozenset()))
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.outcome] = counts.get(o.outcome, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        tr.write_line(f"{suite}")
        tr.write_line(f"  adapter: {adapter}")
        tr.write_line(f"  capabilities: {', '.join(sorted(declared)) or '(none declared)'}")
        tr.write_line(f"  clauses: {summary}")
        for o in sorted(outcomes, key=lambda o: o.clause):
            if full or o.outcome in ("failed", "xpassed"):
                tail = f" - {o.detail}" if o.detail else ""
                tr.write_line(f"    {o.outcome.upper():8} {o.clause}{tail}")


def clause_outcomes(config: pytest.Config) -> list[ClauseOutcome]:
    """The outcomes recorded in a finished session, in the order they ran."""
    return [dataclasses.replace(o) for o in kit_session(config).outcomes.values()]
