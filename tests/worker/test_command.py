"""``portfolio-core worker`` refuses what it cannot run before it starts: a bad concurrency,
a manifest that does not load, a handler module that does not import. Each is one line on
stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfolio_core.cli import main

QUEUE = "schema_version: 1\nadapters:\n  jobs: {port: job_queue, adapter: memory}\n"


def test_a_concurrency_below_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(QUEUE)
    assert main(["worker", str(manifest), "--concurrency", "0"]) == 2
    assert capsys.readouterr().err == "worker: --concurrency must be at least 1\n"


def test_a_manifest_that_does_not_load_is_reported_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("schema_version: 1\nadapters: [\n")
    assert main(["worker", str(manifest), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert str(manifest) in err
    assert "Traceback" not in err


def test_a_handler_module_that_does_not_import_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(QUEUE)
    code = main(["worker", str(manifest), "--import", "no_such_handlers_xyz", "--no-progress"])
    assert code == 1
    assert capsys.readouterr().err == (
        "worker: ModuleNotFoundError: No module named 'no_such_handlers_xyz'\n"
    )
