"""The kit's pytest plugin lets a third-party suite run without a configuration file and
without warnings: it gives pytest-asyncio's fixture loop scope its coming default
(``function``) when the project chose none, and keeps the one it chose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """\
def test_scope(pytestconfig):
    print("scope=" + str(pytestconfig.getini("asyncio_default_fixture_loop_scope")))
"""


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``folder`` (outside this repository, so under no configuration file but
    the one written there), every warning an error."""
    (folder / "test_probe.py").write_text(PROBE)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-W", "error", "-p", "no:cacheprovider", "-s", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_a_configuration_file_the_scope_is_function_and_nothing_warns(
    tmp_path: Path,
) -> None:
    done = pytest_in(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scope=function" in done.stdout
    assert "Warning" not in done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.parametrize("how", ["ini", "override"])
def test_a_scope_the_project_chose_is_kept(tmp_path: Path, how: str) -> None:
    if how == "ini":
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nasyncio_default_fixture_loop_scope = module\n"
        )
        done = pytest_in(tmp_path)
    else:
        done = pytest_in(tmp_path, "-o", "asyncio_default_fixture_loop_scope=module")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scope=module" in done.stdout
