"""Every kind of manifest error: one ManifestError, each problem with its line number."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.manifest import ManifestError, load, plan
from portfolio_core.registry import Registry

Write = Callable[[str, str], Path]
F = "tests.manifest.fakes"


def problems_of(path: Path, **kwargs: object) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        plan(path, environ=kwargs.pop("environ", {}), **kwargs)  # type: ignore[arg-type]
    return info.value


def only(error: ManifestError, kind: str) -> tuple[int, str]:
    matching = [p for p in error.problems if p.kind == kind]
    assert matching, f"no {kind} in {error}"
    return matching[0].line, str(matching[0])


def test_every_problem_is_reported_at_once_with_file_line_column(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapterz: {{}}
        adapters:
          a:
            port: cahce
            adapter: {F}:DictCache
          b:
            port: cache
            adapter: {F}:DictCache
            config: {{max_entrie: 5}}
        """,
    )
    error = problems_of(path)
    text = str(error)
    assert "3 problems" in text
    assert f"{path.name}:2:1: adapterz: unknown key 'adapterz'" in text
    assert "did you mean 'adapters'?" in text
    assert ":5:11: adapters.a.port: unknown port 'cahce' (did you mean 'cache'?)" in text
    assert ":10:14: adapters.b.config.max_entrie: unknown key" in text
    assert "did you mean 'max_entries'?" in text


def test_yaml_syntax_error_is_located(write: Write) -> None:
    path = write("app.yaml", "schema_version: 1\nadapters:\n  a: [1, 2\n  b: 3\n")
    line, text = only(problems_of(path), "yaml-syntax")
    assert line == 4
    assert "invalid YAML" in text


def test_duplicate_key_is_an_error_not_silently_collapsed(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a: {{port: cache, adapter: {F}:DictCache}}
          a: {{port: cache, adapter: {F}:TTLCache}}
        """,
    )
    line, text = only(problems_of(path), "duplicate-key")
    assert line == 4
    assert "first defined at line 3" in text


def test_boolean_key_is_reported_with_a_quoting_hint(write: Write) -> None:
    path = write("app.yaml", "schema_version: 1\non: 3\n")
    line, text = only(problems_of(path), "invalid-key")
    assert line == 2
    assert "quote it" in text


def test_missing_schema_version(write: Write) -> None:
    path = write("app.yaml", "adapters: {}\n")
    line, text = only(problems_of(path), "missing-schema-version")
    assert line == 1
    assert "schema_version: 1" in text


def test_newer_schema_version(write: Write) -> None:
    path = write("app.yaml", "# comment\nschema_version: 99\n")
    line, _ = only(problems_of(path), "invalid-schema-version")
    assert line == 2


def test_missing_port_and_adapter(write: Write) -> None:
    path = write("app.yaml", "schema_version: 1\nadapters:\n  a:\n    config: {}\n")
    error = problems_of(path)
    assert [p.kind for p in error.problems] == ["missing-key", "missing-key"]
    assert {p.line for p in error.problems} == {4}


def test_unknown_entry_point_name_gets_a_hint(
    write: Write, entry_points: Callable[..., None]
) -> None:
    entry_points("cache", "sqlite", f"{F}:DictCache")
    path = write(
        "app.yaml", "schema_version: 1\nadapters:\n  c:\n    port: cache\n    adapter: sqlit\n"
    )
    line, text = only(problems_of(path), "unknown-adapter")
    assert line == 5
    assert "did you mean 'sqlite'?" in text


def test_entry_point_name_claimed_by_two_distributions(
    write: Write, entry_points: Callable[..., None]
) -> None:
    entry_points("cache", "fast", f"{F}:DictCache", dist="pkg-one")
    entry_points("cache", "fast", f"{F}:TTLCache", dist="pkg-two")
    path = write(
        "app.yaml", "schema_version: 1\nadapters:\n  c:\n    port: cache\n    adapter: fast\n"
    )
    line, text = only(problems_of(path), "ambiguous-adapter")
    assert line == 5
    assert "pkg-one" in text
    assert "pkg-two" in text


def test_import_failure_shows_the_real_cause(
    write: Write, entry_points: Callable[..., None]
) -> None:
    entry_points("cache", "broken", "tests.manifest.broken_module:X")
    path = write(
        "app.yaml",
        """
        schema_version: 1
        adapters:
          c: {port: cache, adapter: broken}
          d: {port: cache, adapter: "tests.manifest.broken_module:X"}
          e: {port: cache, adapter: "tests.manifest.no_such_module:X"}
        """,
    )
    error = problems_of(path)
    failed = [p for p in error.problems if p.kind == "adapter-import-failed"]
    assert [p.line for p in failed] == [3, 4]
    for problem in failed:
        assert "a_module_that_is_not_installed" in problem.message
        assert "broken_module.py:3" in problem.message
    missing = [p for p in error.problems if p.kind == "unknown-adapter"]
    assert [p.line for p in missing] == [5]
    assert "no module named 'tests.manifest.no_such_module'" in missing[0].message


def test_class_name_typo_in_module_reference(write: Write) -> None:
    path = write(
        "app.yaml", f"schema_version: 1\nadapters:\n  c: {{port: cache, adapter: '{F}:DictCach'}}\n"
    )
    line, text = only(problems_of(path), "unknown-adapter")
    assert line == 3
    assert "did you mean 'DictCache'?" in text


def test_port_conformance_missing_and_sync_methods(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a: {{port: cache, adapter: "{F}:SyncGetCache"}}
          b: {{port: cache, adapter: "{F}:MissingClear"}}
        """,
    )
    error = problems_of(path)
    mismatches = [p for p in error.problems if p.kind == "port-mismatch"]
    assert any(p.line == 3 and "must be 'async def'" in p.message for p in mismatches)
    assert any(p.line == 4 and "missing clear()" in p.message for p in mismatches)


def test_class_without_adapter_contract(write: Write) -> None:
    path = write(
        "app.yaml",
        f"schema_version: 1\nadapters:\n  a: {{port: tokenizer, adapter: '{F}:NotAnAdapter'}}\n",
    )
    error = problems_of(path)
    assert any(p.line == 3 for p in error.problems)


def test_invalid_config_value_is_located_inside_config(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a:
            port: cache
            adapter: {F}:DictCache
            config:
              namespace: ok
              max_entries: lots
        """,
    )
    line, text = only(problems_of(path), "invalid-config")
    assert line == 8
    assert "adapters.a.config.max_entries" in text
    assert "integer" in text


def test_missing_env_var_is_an_error_never_empty(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a:
            port: cache
            adapter: {F}:DictCache
            config: {{namespace: "${{NAMESPACE}}"}}
        """,
    )
    line, text = only(problems_of(path, environ={"NAMESPAC": "x"}), "missing-env")
    assert line == 6
    assert "NAMESPACE is not set" in text
    assert "did you mean 'NAMESPAC'?" in text
    line, _ = only(problems_of(path, environ={"NAMESPACE": ""}), "missing-env")
    assert line == 6


def test_required_variable_message(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a: {{port: cache, adapter: "{F}:DictCache",
              config: {{namespace: "${{NS:?set NS to the tenant}}"}}}}
        """,
    )
    line, text = only(problems_of(path), "missing-env")
    assert line == 4
    assert "set NS to the tenant" in text


def test_malformed_interpolation(write: Write) -> None:
    path = write(
        "app.yaml",
        'schema_version: 1\nadapters:\n  a: {port: cache, adapter: "x:Y",\n'
        '      config: {n: "${1BAD}"}}\n',
    )
    line, _ = only(problems_of(path), "bad-interpolation")
    assert line == 4


def test_unknown_uses_target_and_keyword(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          store:
            port: cache
            adapter: {F}:DictCache
          front:
            port: cache
            adapter: {F}:DictCache
            uses: {{backing: stor, extra: store}}
        """,
    )
    error = problems_of(path)
    unknown = [p for p in error.problems if p.kind == "unknown-entry"]
    assert unknown[0].line == 9
    assert "did you mean 'store'?" in str(unknown[0])
    keyword = [p for p in error.problems if p.kind == "unknown-dependency"]
    assert keyword[0].line == 9
    assert "takes no keyword 'extra'" in keyword[0].message


def test_missing_required_dependency(write: Write) -> None:
    path = write(
        "app.yaml",
        f"schema_version: 1\nadapters:\n  m: {{port: cache, adapter: '{F}:MultiCache'}}\n",
    )
    line, text = only(problems_of(path), "missing-dependency")
    assert line == 3
    assert "uses.members" in text


def test_dependency_of_the_wrong_port_or_shape(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a: {{port: cache, adapter: "{F}:DictCache"}}
          m: {{port: cache, adapter: "{F}:MultiCache", uses: {{members: a}}}}
        """,
    )
    line, text = only(problems_of(path), "invalid-dependency")
    assert line == 4
    assert "a list of entry names" in text


def test_dependency_cycle_shows_the_cycle(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a: {{port: cache, adapter: "{F}:DictCache", uses: {{backing: b}}}}
          b: {{port: cache, adapter: "{F}:DictCache", uses: {{backing: c}}}}
          c: {{port: cache, adapter: "{F}:DictCache", uses: {{backing: a}}}}
        """,
    )
    line, text = only(problems_of(path), "dependency-cycle")
    assert line == 3
    assert "a -> b -> c -> a" in text


def test_two_defaults_for_one_port(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a: {{port: cache, adapter: "{F}:DictCache", default: true}}
          b: {{port: cache, adapter: "{F}:DictCache", default: true}}
        """,
    )
    line, _ = only(problems_of(path), "duplicate-default")
    assert line == 4


def test_unknown_profile_has_a_hint(write: Write) -> None:
    path = write("app.yaml", "schema_version: 1\nprofiles:\n  high_performance: {}\n")
    _, text = only(problems_of(path, profile="high_perf"), "unknown-profile")
    assert "did you mean 'high_performance'?" in text


def test_extends_missing_file_and_cycle(write: Write) -> None:
    write("a.yaml", "extends: b.yaml\n")
    write("b.yaml", "extends: c.yaml\n")
    write("c.yaml", "extends: a.yaml\n")
    top = write("top.yaml", "schema_version: 1\nextends: a.yaml\n")
    line, text = only(problems_of(top), "extends-cycle")
    assert line == 1  # the extends line of c.yaml
    chain = text.split("extends cycle: ")[1]
    assert [Path(p).name for p in chain.split(" -> ")] == ["a.yaml", "b.yaml", "c.yaml", "a.yaml"]
    missing = write("m.yaml", "schema_version: 1\n\nextends: nowhere.yaml\n")
    line, text = only(problems_of(missing), "file-not-found")
    assert line == 3
    assert "nowhere.yaml" in text


def test_boundary_section_problems_are_located(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a:
            port: cache
            adapter: {F}:DictCache
            protection:
              retry: {{attempts: -1}}
        """,
    )
    error = problems_of(path)
    boundary = [p for p in error.problems if p.kind == "invalid-boundary"]
    assert boundary, str(error)
    assert boundary[0].line == 7
    assert boundary[0].path[:4] == ("adapters", "a", "protection", "retry")


def test_failing_from_config_builds_nothing_and_redacts_the_secret(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          ok: {{port: cache, adapter: "{F}:DictCache"}}
          bad:
            port: cache
            adapter: {F}:ExplodingCache
            config: {{password: "${{secret:env:DB_PASSWORD}}"}}
        """,
    )
    with pytest.raises(ManifestError) as info:
        load(path, environ={"DB_PASSWORD": "hunter2-very-secret"})
    text = str(info.value)
    assert "build-failed" in info.value.kinds
    assert info.value.problems[0].line == 4
    assert "hunter2-very-secret" not in text
    assert "**********" in text
    with pytest.raises(ManifestError):
        Registry.from_manifest(path, environ={"DB_PASSWORD": "hunter2-very-secret"})


def test_a_config_model_that_ignores_unknown_keys_is_refused(write: Write) -> None:
    path = write(
        "app.yaml", f"schema_version: 1\nadapters:\n  a: {{port: cache, adapter: '{F}:LaxCache'}}\n"
    )
    line, text = only(problems_of(path), "not-an-adapter")
    assert line == 3
    assert "extra='forbid'" in text
