"""The ``portfolio-core`` command line."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from portfolio_core import ports
from portfolio_core.cli import main
from tests.support.cli import run_cli


def test_ports_lists_every_port_with_its_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ports"]) == 0
    out = capsys.readouterr().out
    for info in ports.PORTS:
        assert info.name in out
        assert info.summary in out


def test_ports_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ports", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in rows] == [p.key for p in ports.PORTS]
    assert {r["kind"] for r in rows} == {"async", "sync"}


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "ports" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "portfolio-core"
    assert exe.exists(), f"console script missing next to {sys.executable}"
    out = subprocess.run([exe, "ports"], check=True, capture_output=True, text=True).stdout
    assert "EventStore" in out


KIT = ("pytest", "_pytest", "hypothesis", "pytest_asyncio")


@pytest.mark.parametrize(
    "args",
    [
        ["conformance", "--help"],
        ["conformance", "--port", "cache", "tests.testing.adapters:EchoLLM"],
    ],
    ids=["help", "run"],
)
def test_a_command_whose_extra_is_missing_names_it_in_one_line(args: list[str]) -> None:
    done = run_cli(*args, without=KIT)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "portfolio-core conformance: needs the 'testing' extra (No module named 'pytest'): "
        "pip install 'portfolio-core[testing]'"
    ]
    assert done.stdout == ""


def test_a_package_missing_while_a_command_runs_is_named_with_its_extra(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("schema_version: 1\nadapters: {}\n")
    done = run_cli("serve", str(manifest), without=["uvicorn"])
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "portfolio-core serve: needs the 'portal' extra (No module named 'uvicorn'): "
        "pip install 'portfolio-core[portal]'"
    ]


def test_a_missing_module_of_this_library_is_a_bug_and_keeps_its_traceback() -> None:
    done = run_cli("ports", without=["portfolio_core.ports"])
    assert done.returncode != 0
    assert "Traceback" in done.stderr


def test_the_all_extra_installs_every_feature_and_the_kit() -> None:
    from portfolio_core.manifest.extras import unsatisfied

    requires = importlib.metadata.distribution("portfolio-core").requires or []

    def of(extra: str) -> set[str]:
        marker = f"extra == '{extra}'"
        return {r.split(";")[0].strip() for r in requires if r.endswith(marker)}

    everything = of("all")
    for extra in ("sql", "postgres", "redis", "http", "file", "local", "otel", "testing"):
        assert of(extra), f"no extra {extra!r} in the metadata"
        assert of(extra) <= everything, f"[all] lacks {sorted(of(extra) - everything)}"
    assert of("llm") == of("local") | of("http") | of("file")
    assert unsatisfied("all") == []  # this environment has it


def test_the_version_is_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    import portfolio_core

    with pytest.raises(SystemExit):
        main(["--version"])
    shown = capsys.readouterr().out.strip()
    assert shown == f"portfolio-core {importlib.metadata.version('portfolio-core')}"
    assert portfolio_core.__version__ == importlib.metadata.version("portfolio-core")
