"""The scripts in examples/ run and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_hello_port_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "hello_port.py")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Hello, Ada!" in out
    assert "cached: True" in out


def test_config_operator_story_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "config_operator.py")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "follower: version 2 {'app.timeout': 500} by bo" in out, out
    assert "cy's change was refused" in out
    assert "follower: version 3 {'app.timeout': 5} by ana (rollback to 1)" in out
    assert "app.timeout is 5 again" in out
