"""``portfolio-core check|describe|adapters|health`` on manifests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.cli import main

Write = Callable[[str, str], Path]
F = "tests.manifest.fakes"
SECRET = "cli-secret-value-123"


@pytest.fixture
def good(write: Write) -> Path:
    return write(
        "good.yaml",
        f"""
        schema_version: 1
        adapters:
          cache:
            port: cache
            adapter: {F}:DictCache
            config: {{password: "${{secret:env:CLI_PW}}", max_entries: 3}}
        """,
    )


def test_check_ok_and_failing(
    good: Path, write: Write, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_PW", SECRET)
    assert main(["check", str(good)]) == 0
    assert "ok (1 adapter wired)" in capsys.readouterr().out
    bad = write(
        "bad.yaml", "schema_version: 1\nadapters:\n  a: {port: cahce, adapter: x}\n  b: 3\n"
    )
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "bad.yaml:3:" in err
    assert "bad.yaml:4:" in err


def test_describe_redacts_and_accepts_overrides(
    good: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_PW", SECRET)
    assert main(["describe", str(good), "--set", "adapters.cache.config.max_entries=9"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "config.password = '**********'" in out
    assert "config.max_entries = 9    # override adapters.cache.config.max_entries" in out


def test_describe_of_a_rejected_manifest_prints_its_problems_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nadapters:\n  c: {port: nope, adapter: memory}\n")
    assert main(["describe", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bad}:3:" in captured.err


def test_health_command(
    good: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_PW", SECRET)
    assert main(["health", str(good)]) == 0
    assert "overall: healthy" in capsys.readouterr().out


def test_health_reports_an_adapter_that_fails_to_start_as_unhealthy(
    write: Write, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_PW", SECRET)
    path = write(
        "failing.yaml",
        f"""
        schema_version: 1
        adapters:
          fine: {{port: cache, adapter: "{F}:DictCache"}}
          broken:
            port: cache
            adapter: {F}:FailingStart
            config: {{password: "${{secret:env:CLI_PW}}"}}
        """,
    )
    assert main(["health", str(path)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert any(
        line.split()[:2] == ["broken", "UNHEALTHY"] and "ConnectionError" in line for line in lines
    ), captured.out
    assert any(line.split()[:2] == ["fine", "UNHEALTHY"] for line in lines)
    assert "overall: unhealthy" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert SECRET not in captured.out + captured.err


def test_adapters_lists_entry_points_and_conflicts(
    entry_points: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    entry_points("cache", "dict", f"{F}:DictCache", dist="pkg-a")
    assert main(["adapters", "--port", "cache"]) == 0
    assert f"dict                 {F}:DictCache  [pkg-a]" in capsys.readouterr().out
    entry_points("cache", "dict", f"{F}:TTLCache", dist="pkg-b")
    assert main(["adapters"]) == 1
    assert "CONFLICT" in capsys.readouterr().out
