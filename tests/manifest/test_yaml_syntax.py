"""A YAML syntax error in a manifest is reported where the problem starts, with a hint for the
usual causes: an unclosed bracket, tabs, a block indented unlike its siblings."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfolio_core.manifest import ManifestError, plan
from portfolio_core.manifest.errors import Problem

F = "tests.manifest.fakes"


def syntax_problem(tmp_path: Path, text: str) -> Problem:
    path = tmp_path / "app.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    (problem,) = info.value.problems
    assert problem.kind == "yaml-syntax", problem
    assert problem.origin is not None
    assert problem.origin.source.endswith("app.yaml")
    return problem


def test_an_unclosed_bracket_is_reported_at_the_bracket_not_where_the_parser_gave_up(
    tmp_path: Path,
) -> None:
    problem = syntax_problem(
        tmp_path,
        f"schema_version: 1\nadapters: [cache\n  cache:\n    port: cache\n    adapter: {F}:X\n",
    )
    assert problem.origin is not None
    assert (problem.origin.line, problem.origin.column) == (2, 11)
    assert "the '[' opened here is not closed" in problem.message
    assert "noticed at line 3" in problem.message
    assert problem.hint is not None
    assert "close it with ']'" in problem.hint
    assert str(problem).startswith(f"{problem.origin.source}:2:11: ")


def test_an_unclosed_brace_is_reported_at_the_brace(tmp_path: Path) -> None:
    problem = syntax_problem(
        tmp_path, "schema_version: 1\nadapters:\n  c: {port: cache, adapter: x\n  d: 3\n"
    )
    assert problem.origin is not None
    assert (problem.origin.line, problem.origin.column) == (3, 6)
    assert "the '{' opened here is not closed" in problem.message


def test_a_tab_in_the_indentation_gets_the_tab_hint_at_its_line(tmp_path: Path) -> None:
    problem = syntax_problem(
        tmp_path, "schema_version: 1\nadapters:\n  c:\n\tport: cache\n    adapter: memory\n"
    )
    assert problem.origin is not None
    assert problem.origin.line == 4
    assert problem.hint == "YAML forbids tabs for indentation: indent with spaces"


def test_a_config_block_indented_unlike_its_siblings_gets_an_indentation_hint_at_its_line(
    tmp_path: Path,
) -> None:
    problem = syntax_problem(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  c:\n"
        "    port: cache\n"
        "    adapter: memory\n"
        "   config:\n"
        "      max_entries: 3\n",
    )
    assert problem.origin is not None
    assert problem.origin.line == 6
    assert problem.hint is not None
    assert "indented by 3 spaces, line 5 by 4" in problem.hint
    assert "config:" in problem.hint


def test_a_config_value_indented_deeper_than_its_siblings_gets_the_hint_at_its_line(
    tmp_path: Path,
) -> None:
    problem = syntax_problem(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  c:\n"
        "    port: cache\n"
        "    adapter: memory\n"
        "    config:\n"
        "      namespace: app\n"
        "        max_entries: 3\n",
    )
    assert problem.origin is not None
    assert problem.origin.line == 8
    assert problem.hint is not None
    assert "indented by 8 spaces, line 7 by 6" in problem.hint


def test_a_well_indented_manifest_gets_no_syntax_problem(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        "  c:\n"
        "    port: cache\n"
        "    adapter: memory\n"
        "    config:\n"
        "      max_entries: 3\n"
    )
    planned = plan(path, environ={})
    assert list(planned.entries) == ["c"]


def problems(tmp_path: Path, text: str) -> list[Problem]:
    path = tmp_path / "app.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    return list(info.value.problems)


def test_config_keys_written_at_the_entrys_level_get_an_indentation_hint_at_their_line(
    tmp_path: Path,
) -> None:
    (problem,) = problems(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  c:\n"
        "    port: cache\n"
        "    adapter: memory\n"
        "    config:\n"
        "    max_entries: 3\n",
    )
    assert problem.kind == "unknown-key"
    assert problem.line == 7
    assert problem.hint == (
        "check the indentation: config: (line 6) is empty; indent max_entries: deeper than "
        "config: to make it part of it"
    )


def test_a_config_block_written_at_the_entries_level_is_one_indentation_problem(
    tmp_path: Path,
) -> None:
    (problem,) = problems(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  c:\n"
        "    port: cache\n"
        "    adapter: memory\n"
        "  config:\n"
        "    max_entries: 3\n",
    )
    assert problem.kind == "misplaced-key"
    assert problem.line == 6
    assert "'config' is a key of an adapter entry, not the name of one" in problem.message
    assert problem.hint is not None
    assert problem.hint.startswith("check the indentation")


def test_a_recursive_alias_is_a_located_problem_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("schema_version: 1\nadapters: &a\n  c: *a\n")
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    [problem] = [p for p in info.value.problems if p.kind == "yaml-syntax"]
    assert str(problem) == f"{path}:2:11: adapters.c: recursive YAML alias"


def test_a_mapping_key_that_is_not_a_scalar_is_refused_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("schema_version: 1\nadapters:\n  ? [a, b]\n  : 1\n")
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    [problem] = [p for p in info.value.problems if p.kind == "invalid-key"]
    assert problem.message == "mapping keys must be plain strings"
    assert problem.origin is not None
    assert (problem.origin.line, problem.origin.column) == (3, 5)


def test_a_value_yaml_cannot_construct_is_a_yaml_problem(tmp_path: Path) -> None:
    problem = syntax_problem(tmp_path, "schema_version: 1\nwhen: 2026-13-45\n")
    assert problem.message == "invalid YAML value: month must be in 1..12"
