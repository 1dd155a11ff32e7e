#!/usr/bin/env python3
"""Mutation testing of the reference memory adapters, with the conformance kit as the only suite.

For each port listed in ``TARGETS`` this seeds one small bug at a time (a *mutant*) into the
adapter's source, runs the port's contract suite against it, and counts the mutant as *killed*
when a clause fails (or the run hangs past its time limit), *survived* when every clause
passes. The score of a port is killed / (killed + survived). It answers one question: does
the kit notice when an adapter breaks a promise?

    .venv/bin/python tools/mutate.py cache                 # one port
    .venv/bin/python tools/mutate.py cache event_store -j 2
    .venv/bin/python tools/mutate.py --list                # the ports it knows
    .venv/bin/python tools/mutate.py cache --show 17       # print mutant 17's diff

Each run writes ``mutation-report.json`` (``--report``) listing every survivor with its line
and the change, so a reviewer can judge whether it is equivalent (a change no caller can
observe). It takes minutes per port: it is a measuring tool, never run in CI.

The mutants are the one-line bugs a hurried author makes: a comparison off by one (``<`` for
``<=``), a flipped condition (``==``/``!=``, ``in``/``not in``, ``and``/``or``, a dropped
``not``), an arithmetic slip (``+``/``-``), a constant off by one, ``True``/``False``
swapped, a check left out (a ``raise`` or an ``if`` whose branch never runs), a call left out
(a statement that does not run), a value not returned. Docstrings, strings (messages),
annotations and ``__repr__`` are not mutated.

Every mutant runs in a process forked from one that has already imported pytest and its
plugins, so a mutant costs the suite's time, not the interpreter's start.
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import hashlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """One port: the modules to mutate and the test module that runs the kit over them."""

    modules: tuple[str, ...]
    suite: str


def _suite(imports: str, body: str) -> str:
    return "import pytest\n" + textwrap.dedent(imports) + "\n\n" + textwrap.dedent(body)


TARGETS: dict[str, Target] = {
    "cache": Target(
        ("portfolio_core.adapters.memory.cache", "portfolio_core.adapters._shared.cache_keys"),
        _suite(
            """
            from portfolio_core.adapters.memory.cache import MemoryCache
            from portfolio_core.testing.contracts.cache import CacheContract
            """,
            """
            class TestKit(CacheContract):
                @pytest.fixture
                def make_adapter(self):
                    return MemoryCache

            class TestKitTtlPolicy(CacheContract):
                @pytest.fixture
                def make_adapter(self):
                    def make(clock, tenant_scoped=False, max_entries=1000):
                        return MemoryCache(
                            max_entries, policy="ttl", clock=clock, tenant_scoped=tenant_scoped
                        )
                    return make

            class TestKitLfuPolicy(CacheContract):
                @pytest.fixture
                def make_adapter(self):
                    def make(clock, tenant_scoped=False, max_entries=1000):
                        return MemoryCache(
                            max_entries, policy="lfu", clock=clock, tenant_scoped=tenant_scoped
                        )
                    return make
            """,
        ),
    ),
    "event_store": Target(
        (
            "portfolio_core.adapters.memory.event_store",
            # one module before the shared pieces were split by concern, a package after
            "portfolio_core.adapters._shared.event_store",
            "portfolio_core.adapters._shared.event_store.index",
            "portfolio_core.adapters._shared.event_store.rules",
            "portfolio_core.adapters._shared.event_store.validation",
            "portfolio_core.adapters._shared.event_store.subscriptions",
        ),
        _suite(
            """
            from portfolio_core.adapters.memory.event_store import MemoryEventStore
            from portfolio_core.testing.contracts.event_store import EventStoreContract
            """,
            """
            class TestKit(EventStoreContract):
                @pytest.fixture
                def make_adapter(self):
                    return MemoryEventStore
            """,
        ),
    ),
    "stream": Target(
        ("portfolio_core.adapters.memory.stream", "portfolio_core.adapters._shared.stream"),
        _suite(
            """
            from portfolio_core.adapters.memory.stream import MemoryStream
            from portfolio_core.testing.contracts.stream import StreamContract
            """,
            """
            class TestKit(StreamContract):
                @pytest.fixture
                def make_adapter(self):
                    return MemoryStream
            """,
        ),
    ),
    "tenant": Target(
        ("portfolio_core.adapters.memory.tenant", "portfolio_core.adapters._shared.tenant"),
        _suite(
            """
            from portfolio_core.adapters.memory.tenant import MemoryTenant
            from portfolio_core.testing.contracts.tenant import TenantContract
            """,
            """
            class TestKit(TenantContract):
                @pytest.fixture
                def make_adapter(self):
                    return MemoryTenant
            """,
        ),
    ),
    "config_store": Target(
        (
            "portfolio_core.adapters.memory.config_store",
            "portfolio_core.adapters._shared.config_store",
        ),
        _suite(
            """
            from portfolio_core.adapters.memory.config_store import MemoryConfigStore
            from portfolio_core.testing.contracts.config_store import ConfigStoreContract
            """,
            """
            class TestKit(ConfigStoreContract):
                @pytest.fixture
                def make_adapter(self):
                    return MemoryConfigStore
            """,
        ),
    ),
    "job_queue": Target(
        ("portfolio_core.adapters.memory.job_queue", "portfolio_core.adapters._shared.job_queue"),
        _suite(
            """
            from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
            from portfolio_core.testing.contracts.job_queue import JobQueueContract
            """,
            """
            class TestKit(JobQueueContract):
                @pytest.fixture
                def make_adapter(self):
                    def make(*, clock, faults=None):
                        return MemoryJobQueue(clock=clock, faults=faults, poll_interval=0.01)
                    return make
            """,
        ),
    ),
    "cache_store": Target(
        ("portfolio_core.adapters.memory.cache_store",),
        _suite(
            """
            import itertools

            from portfolio_core.adapters.file.cache_persistence import (
                SafetensorsCachePersistence,
            )
            from portfolio_core.adapters.memory.cache_store import MemoryCacheStore
            from portfolio_core.testing.contracts.cache_store import CacheStoreContract

            def layout(root, **tiers):
                # each store gets its own directory under root when it has a cold tier
                counter = itertools.count()

                def make(max_entries=None, max_bytes=None, block_size=16):
                    extra = dict(tiers)
                    if extra.pop("cold", False):
                        extra["persistence"] = SafetensorsCachePersistence(
                            root / f"s{next(counter)}", fsync=False
                        )
                    return MemoryCacheStore(
                        max_entries=max_entries, max_bytes=max_bytes, block_size=block_size,
                        **extra,
                    )
                return make
            """,
            """
            # every tier layout the adapter offers, so that the tier code is reached: hot
            # only (no TIERS), hot and warm, hot and cold, and all three with a one-entry
            # warm tier (entries pass through warm on their way to cold)
            class TestKitHotOnly(CacheStoreContract):
                @pytest.fixture
                def make_adapter(self, tmp_path):
                    return layout(tmp_path)

            class TestKitWarm(CacheStoreContract):
                @pytest.fixture
                def make_adapter(self, tmp_path):
                    return layout(tmp_path, warm=True)

            class TestKitCold(CacheStoreContract):
                @pytest.fixture
                def make_adapter(self, tmp_path):
                    return layout(tmp_path, cold=True)

            class TestKitWarmAndCold(CacheStoreContract):
                @pytest.fixture
                def make_adapter(self, tmp_path):
                    return layout(tmp_path, warm=True, warm_max_entries=1, cold=True)
            """,
        ),
    ),
    "llm": Target(
        ("portfolio_core.adapters.memory.simulated_llm",),
        _suite(
            """
            from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM
            from portfolio_core.testing.contracts.llm import LLMContract
            """,
            """
            class TestKit(LLMContract):
                @pytest.fixture
                def make_adapter(self):
                    return SimulatedLLM

            class TestKitEcho(LLMContract):
                @pytest.fixture
                def make_adapter(self):
                    return lambda: SimulatedLLM(echo=True, chunk_size=2)
            """,
        ),
    ),
}


# -- mutants ----------------------------------------------------------------------------------

_COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
}


@dataclass
class Mutant:
    index: int
    module: str
    line: int
    kind: str
    before: str
    after: str
    outcome: str = ""
    seconds: float = 0.0
    detail: dict[str, str] = field(default_factory=dict)


def _skipped_regions(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, ``__repr__``, ``__all__``,
    ``TYPE_CHECKING`` blocks, logging calls."""
    skip: set[int] = set()

    def mark(node: ast.AST) -> None:
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        ):
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                mark(first)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name in {"__repr__", "__str__"}:
                mark(node)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                if arg.annotation is not None:
                    mark(arg.annotation)
            if node.returns is not None:
                mark(node.returns)
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    mark(default)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif _never_mutated(node):
            mark(node)
        elif isinstance(node, ast.ClassDef) and any(
            ast.unparse(base).endswith("BaseModel") for base in node.bases
        ):
            mark(node)  # a configuration model: defaults for manifests, not behaviour
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
                    mark(stmt)
    return skip


def _never_mutated(node: ast.AST) -> bool:
    """``__all__``, ``TYPE_CHECKING`` blocks, imports, f-strings and logging calls."""
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    if isinstance(node, ast.If):
        return "TYPE_CHECKING" in ast.unparse(node.test)
    if isinstance(node, ast.Call):
        return ast.unparse(node.func).startswith(("log.", "logger.", "_log.", "warnings."))
    return isinstance(node, ast.Import | ast.ImportFrom | ast.JoinedStr)


def _mutations(tree: ast.Module) -> Iterator[tuple[ast.AST, str, str, object]]:
    """(node, field, kind, replacement) for every mutation of ``tree``, in a stable order."""
    skip = _skipped_regions(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                swap = _COMPARE_SWAP.get(type(op))
                if swap is not None:
                    yield node, f"ops.{i}", "compare", swap()
        elif isinstance(node, ast.BinOp):
            swap_op = _BINOP_SWAP.get(type(node.op))
            if swap_op is not None and not _is_string_op(node):
                yield node, "op", "arithmetic", swap_op()
        elif isinstance(node, ast.AugAssign):
            swap_op = _BINOP_SWAP.get(type(node.op))
            if swap_op is not None:
                yield node, "op", "arithmetic", swap_op()
        elif isinstance(node, ast.BoolOp):
            yield node, "op", "boolean", ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "self", "negation", node.operand
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                yield node, "value", "constant", not node.value
            elif isinstance(node.value, int | float) and not isinstance(node.value, bool):
                yield node, "value", "constant", node.value + 1
        elif isinstance(node, ast.If | ast.While):
            yield node, "test", "condition", ast.Constant(False)
            if isinstance(node, ast.If):
                yield node, "test", "condition", ast.Constant(True)
        elif isinstance(node, ast.Raise) and node.exc is not None:
            yield node, "stmt", "removed check", ast.Pass()
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                yield node, "value", "return", ast.Constant(None)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await):
            yield node, "stmt", "removed call", ast.Pass()
        elif isinstance(node, ast.Delete):
            yield node, "stmt", "removed delete", ast.Pass()


def _is_string_op(node: ast.BinOp) -> bool:
    return any(
        (isinstance(side, ast.Constant) and isinstance(side.value, str | bytes))
        or isinstance(side, ast.JoinedStr)
        for side in (node.left, node.right)
    )


def _apply(tree: ast.Module, index: int) -> tuple[ast.Module, int, str, str, str]:
    """A copy of ``tree`` with mutation ``index`` applied; (tree, line, kind, before, after)."""
    mutated = copy.deepcopy(tree)
    for i, (node, where, kind, replacement) in enumerate(_mutations(mutated)):
        if i != index:
            continue
        line = getattr(node, "lineno", 0)
        before = ast.unparse(node) if not isinstance(node, ast.cmpop) else ""
        if where == "self" or where == "stmt":
            _replace_node(mutated, node, replacement)  # type: ignore[arg-type]
            after = ast.unparse(replacement)  # type: ignore[arg-type]
        elif where.startswith("ops."):
            node.ops[int(where.split(".")[1])] = replacement  # type: ignore[attr-defined]
            after = ast.unparse(node)
        else:
            setattr(node, where, replacement)
            after = ast.unparse(node)
        ast.fix_missing_locations(mutated)
        return mutated, line, kind, before.splitlines()[0][:120], after.splitlines()[0][:120]
    raise IndexError(index)


def _replace_node(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return
    raise LookupError("node not found")


def _exists(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:  # its parent is a module, not a package
        return False
    return spec is not None and spec.origin is not None


def _source_of(module: str) -> tuple[str, ast.Module]:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"cannot find module {module}")
    path = Path(spec.origin)
    return str(path), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# -- running ----------------------------------------------------------------------------------


def _install(module: str, tree: ast.Module) -> None:
    """Make ``module`` the mutated code, and forget the adapters that imported the original."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"cannot find module {module}")
    for name in [m for m in sys.modules if m.startswith("portfolio_core.adapters")]:
        del sys.modules[name]
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    parent, _, leaf = module.rpartition(".")
    code = compile(tree, spec.origin, "exec")
    exec(code, mod.__dict__)  # noqa: S102 - the mutant is this tool's own rewrite of our source
    setattr(importlib.import_module(parent), leaf, mod)


def _trace_lines(files: set[str], out: Path) -> None:
    """Record every line run in ``files`` (all threads) and write them to ``out`` at exit."""
    import atexit
    import threading

    seen: set[tuple[str, int]] = set()

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            seen.add((frame.f_code.co_filename, frame.f_lineno))
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename in files:
            seen.add((frame.f_code.co_filename, frame.f_lineno))
            return local
        return None

    sys.settrace(tracer)
    threading.settrace(tracer)

    def dump() -> None:
        out.write_text(json.dumps(sorted(seen)), encoding="utf-8")

    atexit.register(dump)
    _trace_dump.append(dump)


_trace_dump: list[Any] = []


_EXTRA_ARGS: list[str] = []


def _child(
    suite_file: Path,
    mutant: tuple[str, ast.Module] | None,
    trace: Path | None,
    files: set[str],
    quiet: bool,
) -> int:
    if mutant is not None:
        _install(*mutant)
    if trace is not None:
        _trace_lines(files, trace)
    import pytest

    args = [
        str(suite_file),
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
        "-o",
        "timeout=120",
        *_EXTRA_ARGS,
    ]
    if quiet:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    code = int(pytest.main(args))
    for dump in _trace_dump:
        dump()
    return code


def _spawn(
    suite_file: Path,
    mutant: tuple[str, ast.Module] | None,
    *,
    trace: Path | None = None,
    files: set[str] | None = None,
    quiet: bool = True,
) -> int:
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            code = _child(suite_file, mutant, trace, files or set(), quiet)
        finally:
            os._exit(code)
    return pid


def _outcome(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return "survived"
    if code == 1:
        return "killed"
    return f"error({code})"


def _run_many(
    suite_file: Path, jobs: list[tuple[Mutant, tuple[str, ast.Module]]], limit: float, workers: int
) -> None:
    """Run every mutant, ``workers`` at a time; fill in each one's outcome."""
    pending = list(jobs)
    running: dict[int, tuple[Mutant, float]] = {}
    while pending or running:
        while pending and len(running) < workers:
            mutant, code = pending.pop(0)
            running[_spawn(suite_file, code)] = (mutant, time.monotonic())
        time.sleep(0.05)
        for pid, (mutant, started) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            now = time.monotonic()
            if done:
                mutant.outcome = _outcome(status)
            elif now - started > limit:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                mutant.outcome = "timeout"
            else:
                continue
            mutant.seconds = round(now - started, 2)
            del running[pid]
            mark = {"killed": ".", "timeout": "t", "survived": "S"}.get(mutant.outcome, "E")
            print(mark, end="", flush=True)


def _preload(port: str) -> None:
    """Import what every run needs once, before forking (not the modules under test)."""
    import hypothesis  # noqa: F401
    import pytest  # noqa: F401
    import pytest_asyncio  # noqa: F401

    import portfolio_core.ports  # noqa: F401

    for name in [m for m in sys.modules if m.startswith("portfolio_core.adapters")]:
        del sys.modules[name]


def _sampled(key: str, seen: dict[str, int], share: float, seed: int) -> bool:
    """Whether the mutant described by ``key`` is in the sample: decided by its content
    (module, kind, the code before and after; the n-th of equal ones), not its position, so
    that two versions of a module measured with one seed share the mutants they share."""
    n = seen[key] = seen.get(key, 0) + 1
    digest = hashlib.sha256(f"{seed}|{key}|{n}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def run_port(port: str, args: argparse.Namespace) -> dict[str, object]:
    target = TARGETS[port]
    _preload(port)
    sources = {module: _source_of(module) for module in target.modules if _exists(module)}
    files = {path for path, _ in sources.values()}
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        suite_file = Path(tmp) / f"test_kit_{port}.py"
        suite_file.write_text(target.suite, encoding="utf-8")
        trace = Path(tmp) / "lines.json"
        start = time.monotonic()
        _, status = os.waitpid(
            _spawn(suite_file, None, trace=trace, files=files, quiet=not args.verbose), 0
        )
        base_seconds = time.monotonic() - start
        if _outcome(status) != "survived":
            raise SystemExit(
                f"{port}: the kit does not pass on the unmutated adapter; rerun with -v to see why"
            )
        reached = {(f, line) for f, line in json.loads(trace.read_text(encoding="utf-8"))}
        limit = max(30.0, base_seconds * 2 + 10)
        print(f"{port}: unmutated suite passes in {base_seconds:.1f}s (traced); limit {limit:.0f}s")
        mutants: list[Mutant] = []
        jobs: list[tuple[Mutant, tuple[str, ast.Module]]] = []
        offset = 0
        for module, (path, tree) in sources.items():
            count = sum(1 for _ in _mutations(tree))
            seen: dict[str, int] = {}
            for index in range(count):
                if args.only is not None and offset + index not in args.only:
                    continue
                mutated, line, kind, before, after = _apply(tree, index)
                if args.sample is not None and not _sampled(
                    f"{module}|{kind}|{before}|{after}", seen, args.sample, args.seed
                ):
                    continue
                mutant = Mutant(offset + index, module, line, kind, before, after)
                mutants.append(mutant)
                if (path, line) not in reached:
                    mutant.outcome = "not reached"
                    continue
                jobs.append((mutant, (module, mutated)))
            offset += count
        print(f"{port}: {len(mutants)} mutants, {len(jobs)} to run")
        _run_many(suite_file, jobs, limit, args.jobs)
        print()
    killed = sum(m.outcome in {"killed", "timeout"} for m in mutants)
    survived = [m for m in mutants if m.outcome == "survived"]
    errors = [m for m in mutants if m.outcome.startswith("error")]
    unreached = [m for m in mutants if m.outcome == "not reached"]
    scored = killed + len(survived)
    score = killed / scored if scored else 1.0
    print(
        f"{port}: {len(mutants)} mutants, {len(unreached)} on lines the kit never runs, "
        f"{scored} run: {killed} killed, {len(survived)} survived, {len(errors)} errors; "
        f"score {score:.1%}"
    )
    for m in survived:
        print(
            f"  survived {m.module.rsplit('.', 1)[1]}:{m.line} [{m.kind}] {m.before!r} -> "
            f"{m.after!r} (#{m.index})"
        )
    return {
        "port": port,
        "mutants": len(mutants),
        "not_reached": len(unreached),
        "run": scored + len(errors),
        "killed": killed,
        "survived": len(survived),
        "errors": len(errors),
        "score": round(score, 4),
        "survivors": [asdict(m) for m in survived],
        "error_mutants": [asdict(m) for m in errors],
        "not_reached_mutants": [
            f"{m.module.rsplit('.', 1)[1]}:{m.line} {m.kind}" for m in unreached
        ],
    }


def show(port: str, index: int) -> None:
    for module in [m for m in TARGETS[port].modules if _exists(m)]:
        path, tree = _source_of(module)
        count = sum(1 for _ in _mutations(tree))
        if index < count:
            mutated, *_ = _apply(tree, index)
            original = ast.unparse(tree).splitlines()
            changed = ast.unparse(mutated).splitlines()
            sys.stdout.writelines(
                line + "\n" for line in difflib.unified_diff(original, changed, path, path, n=3)
            )
            return
        index -= count
    raise SystemExit("no such mutant")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ports", nargs="*", help="ports to mutate (default: all)")
    parser.add_argument("--list", action="store_true", help="list the ports and exit")
    parser.add_argument("--show", type=int, help="print the diff of one mutant and exit")
    parser.add_argument(
        "--only", type=lambda s: {int(x) for x in s.split(",")}, help="mutant indexes to run"
    )
    parser.add_argument("--report", type=Path, default=Path("mutation-report.json"))
    parser.add_argument("-j", "--jobs", type=int, default=1, help="mutants run at once")
    parser.add_argument(
        "--sample", type=float, help="run this share of the mutants (0-1), chosen by content"
    )
    parser.add_argument("--seed", type=int, default=21, help="seed of --sample")
    parser.add_argument(
        "--max-examples",
        type=int,
        help="hypothesis examples per property and state machine (--kit-max-examples)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the unmutated run")
    args = parser.parse_args()
    if args.list:
        print("\n".join(TARGETS))
        return
    ports = args.ports or list(TARGETS)
    unknown = [p for p in ports if p not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown ports {unknown}; known: {', '.join(TARGETS)}")
    if args.show is not None:
        show(ports[0], args.show)
        return
    os.chdir(ROOT)
    if args.max_examples is not None:
        _EXTRA_ARGS.extend(["--kit-max-examples", str(args.max_examples)])
    results = [run_port(port, args) for port in ports]
    args.report.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"report written to {args.report}")


if __name__ == "__main__":
    main()
