"""Malformed ``${...}`` references are located problems with a hint showing the right form."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfolio_core.manifest import ManifestError, plan
from portfolio_core.manifest.errors import Problem

F = "tests.manifest.fakes"


def interpolation_problem(tmp_path: Path, value: str) -> Problem:
    path = tmp_path / "app.yaml"
    path.write_text(
        "schema_version: 1\nadapters:\n"
        f"  c: {{port: cache, adapter: '{F}:DictCache', config: {{namespace: '{value}'}}}}\n"
    )
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    [problem] = info.value.problems
    assert problem.kind == "bad-interpolation"
    assert problem.path == ("adapters", "c", "config", "namespace")
    assert problem.line == 3
    return problem


def test_an_unclosed_reference_is_refused_with_the_escape_hint(tmp_path: Path) -> None:
    problem = interpolation_problem(tmp_path, "ns-${HOME")
    assert problem.message == "unclosed '${' in value"
    assert problem.hint == "write '$${' for a literal '${'"


def test_a_config_reference_without_a_key_is_refused(tmp_path: Path) -> None:
    problem = interpolation_problem(tmp_path, "${config:}")
    assert problem.message == "'${config:}' names no config key"
    assert problem.hint == "write ${config:KEY} or ${config:KEY:-default}"


@pytest.mark.parametrize("reference", ["${secret:env}", "${secret::X}", "${secret:env:}"])
def test_a_secret_reference_without_backend_and_ref_is_refused(
    tmp_path: Path, reference: str
) -> None:
    problem = interpolation_problem(tmp_path, reference)
    assert problem.message == f"'{reference}' is not a valid secret reference"
    assert problem.hint is not None
    assert "${secret:env:DB_PASSWORD}" in problem.hint
