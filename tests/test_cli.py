"""The ``portfolio-core`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from portfolio_core import ports
from portfolio_core.cli import main


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
