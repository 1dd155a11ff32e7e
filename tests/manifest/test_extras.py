"""A manifest that needs an extra which is not installed fails at load (and so at
``portfolio-core check``) naming the extra, instead of failing later at start."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.cli import main
from portfolio_core.manifest import ManifestError, plan
from portfolio_core.manifest.extras import extra_providing, install_command, unsatisfied
from tests.support.cli import run_cli

Write = Callable[[str, str], Path]

REAL_VERSION = importlib.metadata.version


def pretend_not_installed(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make the distribution metadata say that ``names`` are not installed."""

    def version(name: str) -> str:
        if name.lower() in names:
            raise importlib.metadata.PackageNotFoundError(name)
        return REAL_VERSION(name)

    monkeypatch.setattr(importlib.metadata, "version", version)


POSTGRES_CACHE = """
schema_version: 1
adapters:
  cache:
    port: cache
    adapter: {adapter}
    config: {{url: "postgresql://u@127.0.0.1:1/x", table: t}}
"""


@pytest.mark.parametrize("adapter", ["postgres", "portfolio_core.adapters.sql.cache:PostgresCache"])
def test_an_adapter_whose_extra_is_missing_is_a_load_problem_naming_the_extra(
    write: Write, monkeypatch: pytest.MonkeyPatch, adapter: str
) -> None:
    pretend_not_installed(monkeypatch, "psycopg")
    path = write("m.yaml", POSTGRES_CACHE.format(adapter=adapter))
    with pytest.raises(ManifestError) as caught:
        plan(path)
    (problem,) = caught.value.problems
    assert problem.kind == "missing-extra"
    assert problem.message == (
        f"adapter {adapter!r}{' for port cache' if ':' not in adapter else ''} needs the "
        "'postgres' extra of portfolio-core, which is not installed (missing: psycopg>=3.2)"
    )
    assert problem.hint == "pip install 'portfolio-core[postgres]'"
    assert (problem.origin.line, problem.path) == (5, ("adapters", "cache", "adapter"))


def test_check_fails_on_a_driver_that_cannot_be_imported(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(POSTGRES_CACHE.format(adapter="postgres"))
    done = run_cli("check", str(path), without=["psycopg"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "needs the 'postgres' extra of portfolio-core" in done.stderr
    assert "'import psycopg' fails: No module named 'psycopg'" in done.stderr
    assert "pip install 'portfolio-core[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_names_the_extra_of_a_module_that_fails_to_import(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "schema_version: 1\nadapters:\n"
        "  cache: {port: cache, adapter: tests.support.needs_redis:CacheImportingRedis}\n"
    )
    done = run_cli("check", str(path), without=["redis"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "'tests.support.needs_redis:CacheImportingRedis' needs the 'redis' extra of "
        "portfolio-core, which is not installed (No module named 'redis')"
    ) in done.stderr
    assert "pip install 'portfolio-core[redis]'" in done.stderr


def test_an_installed_extra_is_no_problem(write: Write) -> None:
    path = write("m.yaml", POSTGRES_CACHE.format(adapter="postgres"))
    assert plan(path).entries["cache"].cls.__name__ == "PostgresCache"


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("psycopg", "postgres"),
        ("sqlalchemy", "sql"),
        ("redis", "redis"),
        ("httpx", "http"),
        ("tokenizers", "local"),
        ("safetensors", "file"),
        ("opentelemetry.sdk.trace", "otel"),
        ("prometheus_client", "otel"),
        ("pytest", "testing"),
        ("pytest_asyncio", "testing"),
        ("not_a_dependency", None),
    ],
)
def test_the_smallest_extra_providing_a_module(module: str, extra: str | None) -> None:
    assert extra_providing(module) == extra


def test_unsatisfied_names_missing_and_too_old_requirements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert unsatisfied("postgres") == []
    assert unsatisfied("no-such-extra") == []
    pretend_not_installed(monkeypatch, "psycopg")
    assert unsatisfied("postgres") == ["psycopg>=3.2"]
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "1.0" if name == "redis" else REAL_VERSION(name)
    )
    assert unsatisfied("redis") == ["redis>=5.0 (1.0 is installed)"]
    assert install_command(["sql", "testing"]) == "pip install 'portfolio-core[sql,testing]'"


def test_adapters_marks_an_adapter_whose_extra_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pretend_not_installed(monkeypatch, "redis")
    assert main(["adapters", "--port", "cache"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["redis"].endswith("MISSING EXTRA redis: pip install 'portfolio-core[redis]'"), (
        lines["redis"]
    )
    assert "MISSING" not in lines["memory"]
    assert "MISSING" not in lines["postgres"]


def test_adapters_rejects_an_unknown_port_with_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["adapters", "--port", "cahce"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "portfolio-core adapters: unknown port 'cahce' (did you mean 'cache'?)"
    )
