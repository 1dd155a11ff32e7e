"""Extends chains, the merge rule, profiles, precedence and interpolation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.manifest import describe, plan

Write = Callable[[str, str], Path]
F = "tests.manifest.fakes"


@pytest.fixture
def chain(write: Write) -> Path:
    write(
        "base/root.yaml",
        f"""
        adapters:
          cache:
            port: cache
            adapter: {F}:DictCache
            config: {{max_entries: 10, namespace: root}}
          store:
            port: cache
            adapter: {F}:DictCache
            config: {{namespace: store}}
        profiles:
          high_performance:
            adapters: {{cache: {{config: {{max_entries: 100000}}}}}}
        """,
    )
    write(
        "base/middle.yaml",
        f"""
        extends: root.yaml
        adapters:
          cache:
            config: {{namespace: middle}}
          ttl:
            port: cache
            adapter: {F}:TTLCache
        """,
    )
    return write(
        "app.yaml",
        """
        schema_version: 1
        extends: base/middle.yaml
        adapters:
          store:
            config: {namespace: "${STORE_NS:-app-store}"}
        profiles:
          cost_optimized:
            adapters: {cache: {config: {max_entries: 5}}}
        """,
    )


def config_of(planned: object, name: str) -> dict[str, object]:
    entry = planned.entries[name]  # type: ignore[attr-defined]
    return dict(entry.config.model_dump())


def test_three_level_chain_merges_maps_deeply(chain: Path) -> None:
    planned = plan(chain, environ={})
    assert config_of(planned, "cache") == {
        "max_entries": 10,
        "namespace": "middle",
        "password": None,
    }
    assert config_of(planned, "store")["namespace"] == "app-store"
    assert set(planned.entries) == {"cache", "store", "ttl"}
    assert len(planned.composed.files) == 3


def test_lists_and_scalars_replace(write: Write) -> None:
    write(
        "base.yaml",
        f"adapters:\n  a: {{port: cache, adapter: '{F}:MultiCache', uses: {{members: [x, y]}}}}\n"
        f"  x: {{port: cache, adapter: '{F}:DictCache'}}\n"
        f"  y: {{port: cache, adapter: '{F}:DictCache'}}\n",
    )
    top = write(
        "top.yaml",
        "schema_version: 1\nextends: base.yaml\nadapters:\n  a: {uses: {members: [y]}}\n",
    )
    assert plan(top, environ={}).entries["a"].uses == {"members": ["y"]}


def test_precedence_base_extends_profile_env_override(chain: Path) -> None:
    env = {"PORTFOLIO_CORE_PROFILE": "high_performance"}
    assert config_of(plan(chain, environ=env), "cache")["max_entries"] == 100000
    env["PORTFOLIO_CORE__ADAPTERS__CACHE__CONFIG__MAX_ENTRIES"] = "42"
    assert config_of(plan(chain, environ=env), "cache")["max_entries"] == 42
    planned = plan(chain, environ=env, overrides={"adapters.cache.config.max_entries": 7})
    assert config_of(planned, "cache")["max_entries"] == 7
    # an explicit profile argument wins over the environment variable
    planned = plan(
        chain, environ={"PORTFOLIO_CORE_PROFILE": "high_performance"}, profile="cost_optimized"
    )
    assert config_of(planned, "cache")["max_entries"] == 5
    assert planned.composed.profiles == ["cost_optimized"]


def test_describe_says_where_each_value_came_from(chain: Path) -> None:
    env = {
        "PORTFOLIO_CORE_PROFILE": "high_performance",
        "PORTFOLIO_CORE__ADAPTERS__TTL__CONFIG__NAMESPACE": "from-env",
        "STORE_NS": "ns-from-env",
    }
    text = describe(plan(chain, environ=env))
    assert "config.max_entries = 100000    # " in text
    assert "root.yaml:12:" in text
    assert "[profile:high_performance]" in text
    assert "env PORTFOLIO_CORE__ADAPTERS__TTL__CONFIG__NAMESPACE" in text
    assert "(from env STORE_NS)" in text
    assert "config.password = None    # default" in text


def test_describe_credits_a_default_not_the_environment_when_the_variable_is_unset(
    write: Write,
) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a:
            port: cache
            adapter: {F}:DictCache
            config:
              namespace: "${{NS:-fallback}}"
        """,
    )
    unset = line_of(describe(plan(path, environ={})), "config.namespace")
    assert unset.startswith("config.namespace = 'fallback'    # ")
    assert unset.endswith("app.yaml:7:18 (default, NS unset)")
    given = line_of(describe(plan(path, environ={"NS": "given"})), "config.namespace")
    assert given.startswith("config.namespace = 'given'    # ")
    assert given.endswith("app.yaml:7:18 (from env NS)")


def line_of(text: str, prefix: str) -> str:
    return next(line.strip() for line in text.splitlines() if line.strip().startswith(prefix))


def test_interpolation_forms(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a:
            port: cache
            adapter: {F}:DictCache
            config:
              namespace: "${{PREFIX}}-${{SUFFIX:-dflt}}-$${{literal}}"
              max_entries: "${{SIZE}}"
        """,
    )
    planned = plan(path, environ={"PREFIX": "p", "SIZE": "12"})
    assert config_of(planned, "a")["namespace"] == "p-dflt-${literal}"
    assert config_of(planned, "a")["max_entries"] == 12


def test_interpolated_text_cannot_inject_yaml(write: Write) -> None:
    path = write(
        "app.yaml",
        f"schema_version: 1\nadapters:\n  a: {{port: cache, adapter: '{F}:DictCache', "
        "config: {namespace: '${NS}'}}\n",
    )
    planned = plan(path, environ={"NS": "x}\n  b: {port: evil"})
    assert config_of(planned, "a")["namespace"] == "x}\n  b: {port: evil"
    assert set(planned.entries) == {"a"}


def test_yaml_anchors_and_merge_keys_work(write: Write) -> None:
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        x-common: &common {{port: cache, adapter: "{F}:DictCache"}}
        adapters:
          a: {{<<: *common, config: {{namespace: a}}}}
        """,
    )
    # x-common is not a manifest key: reported, not ignored
    with pytest.raises(Exception, match="unknown key 'x-common'"):
        plan(path, environ={})


BASE = f"schema_version: 1\nadapters:\n  c: {{port: cache, adapter: '{F}:DictCache'}}\n"


def rejected(path: Path, **kwargs: object) -> list[str]:
    from portfolio_core.manifest import ManifestError

    with pytest.raises(ManifestError) as info:
        plan(path, environ=kwargs.pop("environ", {}), **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_an_override_may_set_a_whole_mapping_or_list(write: Write) -> None:
    path = write("app.yaml", BASE)
    planned = plan(
        path,
        environ={},
        overrides={"adapters.c.protection": {"outbox": {"methods": ["put"], "path": "o.db"}}},
    )
    assert planned.entries["c"].protection == {"outbox": {"methods": ["put"], "path": "o.db"}}
    text = describe(planned)
    assert "protection.outbox.methods[0] = 'put'    # override adapters.c.protection" in text


def test_an_override_through_a_scalar_or_with_an_empty_segment_is_refused(write: Write) -> None:
    path = write("app.yaml", BASE)
    [through] = rejected(path, overrides={"adapters.c.port.x": 1})
    assert "cannot set adapters.c.port.x: adapters.c.port is not a mapping" in through
    [empty] = rejected(path, overrides={"adapters..c": 1})
    assert "bad override path 'adapters..c'" in empty


def test_an_environment_variable_with_an_empty_segment_is_refused(write: Write) -> None:
    path = write("app.yaml", BASE)
    [problem] = rejected(path, environ={"PORTFOLIO_CORE__ADAPTERS____C": "1"})
    assert "PORTFOLIO_CORE__ADAPTERS____C does not name a manifest path" in problem


def test_a_profile_cannot_set_the_schema_version_and_its_lists_are_credited_to_it(
    write: Write,
) -> None:
    path = write(
        "app.yaml",
        BASE
        + f"  m: {{port: cache, adapter: '{F}:MultiCache', uses: {{members: [c]}}}}\n"
        + "profiles:\n  p:\n    schema_version: 2\n"
        + "    adapters:\n      m: {uses: {members: [c]}}\n",
    )
    [problem] = rejected(path, profile="p")
    assert "a profile cannot set 'schema_version'" in problem
    assert ":7:5: " in problem
    fine = write(
        "fine.yaml",
        BASE
        + f"  m: {{port: cache, adapter: '{F}:MultiCache', uses: {{members: [c]}}}}\n"
        + "profiles:\n  p:\n    adapters:\n      m: {uses: {members: [c]}}\n",
    )
    members = plan(fine, environ={}, profile="p").composed.tree["adapters"]["m"]["uses"]["members"]
    assert [o.layer for o in (members.origin, *members.origins)] == ["profile:p", "profile:p"]
