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
