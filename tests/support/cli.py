"""Run ``portfolio-core`` in a fresh interpreter, optionally as if some packages were not
installed (an import blocker on ``sys.meta_path`` refuses the named modules and everything
under them)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROGRAM = """
import sys

class _NotInstalled:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

blocked = {name for name in sys.argv[1].split(",") if name}
if blocked:
    sys.meta_path.insert(0, _NotInstalled(blocked))
from portfolio_core.cli import main

raise SystemExit(main(sys.argv[2:]))
"""


def run_cli(
    *args: str, without: Iterable[str] = (), cwd: Path = ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``portfolio-core ARGS`` in a subprocess where the modules ``without`` (and their
    submodules) cannot be imported; returns the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM, ",".join(without), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
