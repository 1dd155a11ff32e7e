"""The layers contract in pyproject.toml catches an upward import even when it is made inside
a function: checked on a copy of the package with one such import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

UPWARD = """

def _registry_class() -> object:
    from portfolio_core.registry import Registry  # manifest is below registry

    return Registry
"""


def test_an_upward_import_inside_a_function_breaks_the_layers_contract(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "portfolio_core",
        src / "portfolio_core",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    with (src / "portfolio_core" / "manifest" / "wiring.py").open("a") as wiring:
        wiring.write(UPWARD)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", str(tmp_path / "pyproject.toml")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "portfolio_core.manifest is not allowed to import portfolio_core.registry" in done.stdout
    assert "portfolio_core.manifest.wiring -> portfolio_core.registry" in done.stdout
