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


def adapters(*entries: str) -> str:
    """A manifest with these entries (one YAML line each) under ``adapters:``."""
    return "schema_version: 1\nadapters:\n" + "".join(f"  {entry}\n" for entry in entries)


def entry(name: str, adapter: str, more: str = "") -> str:
    return f"{name}: {{port: cache, adapter: '{F}:{adapter}'{more}}}"


NAMESPACE_FROM_ENV = adapters(
    "a:", "  port: cache", f"  adapter: {F}:DictCache", '  config: {namespace: "${NAMESPACE}"}'
)

# id: (manifest text, plan() keywords, kind, line or None, texts the problem contains)
CASES: dict[str, tuple[str, dict[str, object], str, int | None, list[str]]] = {
    "yaml-syntax": (
        adapters("a: [1, 2", "b: 3"),
        {},
        "yaml-syntax",
        3,
        ["invalid YAML", "opened here"],
    ),
    "duplicate-key-not-collapsed": (
        adapters(entry("a", "DictCache"), entry("a", "TTLCache")),
        {},
        "duplicate-key",
        4,
        ["first defined at line 3"],
    ),
    "boolean-key-hint": ("schema_version: 1\non: 3\n", {}, "invalid-key", 2, ["quote it"]),
    "missing-schema-version": ("adapters: {}\n", {}, "missing-schema-version", 1, ["version: 1"]),
    "newer-schema-version": (
        "# comment\nschema_version: 99\n",
        {},
        "invalid-schema-version",
        2,
        ["newer than this portfolio-core understands"],
    ),
    "class-name-typo": (
        adapters(entry("c", "DictCach")),
        {},
        "unknown-adapter",
        3,
        ["did you mean 'DictCache'?"],
    ),
    "class-without-adapter-contract": (
        adapters(f"a: {{port: tokenizer, adapter: '{F}:NotAnAdapter'}}"),
        {},
        "not-an-adapter",
        3,
        ["has no config_model"],
    ),
    "config-model-ignoring-unknown-keys": (
        adapters(entry("a", "LaxCache")),
        {},
        "not-an-adapter",
        3,
        ["extra='forbid'"],
    ),
    "invalid-config-value-inside-config": (
        adapters(entry("a", "DictCache", ",\n      config: {namespace: ok, max_entries: lots}")),
        {},
        "invalid-config",
        4,
        ["adapters.a.config.max_entries", "integer"],
    ),
    "unset-variable-with-hint": (
        NAMESPACE_FROM_ENV,
        {"environ": {"NAMESPAC": "x"}},
        "missing-env",
        6,
        ["NAMESPACE is not set", "did you mean 'NAMESPAC'?"],
    ),
    "empty-variable-is-never-an-empty-string": (
        NAMESPACE_FROM_ENV,
        {"environ": {"NAMESPACE": ""}},
        "missing-env",
        6,
        ["NAMESPACE is not set"],
    ),
    "required-variable-message": (
        adapters(entry("a", "DictCache", ',\n      config: {namespace: "${NS:?set NS first}"}')),
        {},
        "missing-env",
        4,
        ["set NS first"],
    ),
    "malformed-interpolation": (
        adapters(entry("a", "DictCache", ',\n      config: {namespace: "${1BAD}"}')),
        {},
        "bad-interpolation",
        4,
        ["is not a valid reference"],
    ),
    "missing-required-dependency": (
        adapters(entry("m", "MultiCache")),
        {},
        "missing-dependency",
        3,
        ["uses.members"],
    ),
    "dependency-of-the-wrong-shape": (
        adapters(entry("a", "DictCache"), entry("m", "MultiCache", ", uses: {members: a}")),
        {},
        "invalid-dependency",
        4,
        ["a list of entry names"],
    ),
    "dependency-cycle-shown": (
        adapters(
            *(entry(a, "DictCache", f", uses: {{backing: {b}}}") for a, b in ("ab", "bc", "ca"))
        ),
        {},
        "dependency-cycle",
        3,
        ["a -> b -> c -> a"],
    ),
    "two-defaults-for-one-port": (
        adapters(*(entry(name, "DictCache", ", default: true") for name in "ab")),
        {},
        "duplicate-default",
        4,
        ["several cache entries are marked default: a, b"],
    ),
    "unknown-profile-hint": (
        "schema_version: 1\nprofiles:\n  high_performance: {}\n",
        {"profile": "high_perf"},
        "unknown-profile",
        None,
        ["did you mean 'high_performance'?"],
    ),
}


@pytest.mark.parametrize(
    ("text", "keywords", "kind", "line", "contains"), CASES.values(), ids=CASES.keys()
)
def test_one_problem_located_with_its_words(
    write: Write,
    text: str,
    keywords: dict[str, object],
    kind: str,
    line: int | None,
    contains: list[str],
) -> None:
    got_line, got_text = only(problems_of(write("app.yaml", text), **keywords), kind)
    if line is not None:
        assert got_line == line
    for words in contains:
        assert words in got_text


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


def test_missing_port_and_adapter(write: Write) -> None:
    path = write("app.yaml", "schema_version: 1\nadapters:\n  a:\n    config: {}\n")
    error = problems_of(path)
    assert [p.kind for p in error.problems] == ["missing-key", "missing-key"]
    assert {p.line for p in error.problems} == {4}


@pytest.mark.parametrize(
    ("installed", "kind", "contains"),
    [
        ([("sqlite", "DictCache", "dist-a")], "unknown-adapter", ["did you mean 'sqlite'?"]),
        (
            [("sqlit", "DictCache", "pkg-one"), ("sqlit", "TTLCache", "pkg-two")],
            "ambiguous-adapter",
            ["pkg-one", "pkg-two"],
        ),
    ],
    ids=["unknown-name-hint", "name-claimed-by-two-distributions"],
)
def test_entry_point_names(
    write: Write,
    entry_points: Callable[..., None],
    installed: list[tuple[str, str, str]],
    kind: str,
    contains: list[str],
) -> None:
    for name, cls, dist in installed:
        entry_points("cache", name, f"{F}:{cls}", dist=dist)
    path = write("app.yaml", adapters("c: {port: cache, adapter: sqlit}"))
    line, text = only(problems_of(path), kind)
    assert line == 3
    for words in contains:
        assert words in text


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


def test_port_conformance_missing_and_sync_methods(write: Write) -> None:
    path = write("app.yaml", adapters(entry("a", "SyncGetCache"), entry("b", "MissingClear")))
    mismatches = [p for p in problems_of(path).problems if p.kind == "port-mismatch"]
    assert any(p.line == 3 and "must be 'async def'" in p.message for p in mismatches)
    assert any(p.line == 4 and "missing clear()" in p.message for p in mismatches)


def test_unknown_uses_target_and_keyword(write: Write) -> None:
    uses = ", uses: {backing: stor, extra: store}"
    path = write(
        "app.yaml", adapters(entry("store", "DictCache"), entry("front", "DictCache", uses))
    )
    error = problems_of(path)
    unknown = [p for p in error.problems if p.kind == "unknown-entry"]
    assert unknown[0].line == 4
    assert "did you mean 'store'?" in str(unknown[0])
    keyword = [p for p in error.problems if p.kind == "unknown-dependency"]
    assert keyword[0].line == 4
    assert "takes no keyword 'extra'" in keyword[0].message


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
    retry = ",\n      protection: {retry: {attempts: -1}}"
    error = problems_of(write("app.yaml", adapters(entry("a", "DictCache", retry))))
    boundary = [p for p in error.problems if p.kind == "invalid-boundary"]
    assert boundary, str(error)
    assert boundary[0].line == 4
    assert boundary[0].path[:4] == ("adapters", "a", "protection", "retry")


def test_failing_from_config_builds_nothing_and_redacts_the_secret(write: Write) -> None:
    secret = ', config: {password: "${secret:env:DB_PASSWORD}"}'
    path = write(
        "app.yaml", adapters(entry("ok", "DictCache"), entry("bad", "ExplodingCache", secret))
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


@pytest.mark.parametrize(
    ("ref", "kind", "message"),
    [
        (
            "tests.manifest.fakes:",
            "unknown-adapter",
            "'tests.manifest.fakes:' is not 'module:Class'",
        ),
        (":DictCache", "unknown-adapter", "':DictCache' is not 'module:Class'"),
        (
            "tests.support.manifest:write",
            "not-a-class",
            "tests.support.manifest:write is not a class",
        ),
    ],
)
def test_an_adapter_reference_that_names_no_class_is_located(
    tmp_path: Path, ref: str, kind: str, message: str
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(f"schema_version: 1\nadapters:\n  c: {{port: cache, adapter: '{ref}'}}\n")
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    [problem] = info.value.problems
    assert problem.kind == kind
    assert str(problem) == f"{path}:3:29: adapters.c.adapter: {message}"
