"""Bad input: arbitrary YAML and mutated valid manifests give a wired registry or one
ManifestError, never another exception."""

from __future__ import annotations

import asyncio
import tempfile
import warnings
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfolio_core.manifest import ManifestDeprecationWarning, ManifestError
from portfolio_core.registry import Registry

F = "tests.manifest.fakes"
VALID: dict[str, Any] = {
    "schema_version": 1,
    "adapters": {
        "store": {"port": "cache", "adapter": f"{F}:DictCache", "config": {"max_entries": 3}},
        "front": {
            "port": "cache",
            "adapter": f"{F}:DictCache",
            "default": True,
            "uses": {"backing": "store"},
            "config": {"namespace": "${NS:-x}", "password": "${secret:env:PW}"},
            "protection": {"timeout": {"seconds": 1.0}},
        },
    },
    "profiles": {"p": {"adapters": {"store": {"config": {"max_entries": 5}}}}},
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "cache",
            "${NS}",
            "${secret:env:PW}",
            "${X:?no}",
            "memory",
            "store",
            "front",
            f"{F}:DictCache",
            "x:Y",
            "$${",
            "${",
            "schema_version",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "port",
                    "adapter",
                    "config",
                    "uses",
                    "default",
                    "extends",
                    "profiles",
                    "adapters",
                    "max_entries",
                    "timeout",
                    "backing",
                    "namespace",
                    "a",
                ]
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


def _outcome(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_text(text)
        error: ManifestError | None = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ManifestDeprecationWarning)
                registry = Registry.from_manifest(
                    path, environ={"PW": "pw-secret"}, profile="p" if "p" in text else None
                )
        except ManifestError as exc:  # the only exception allowed
            error = exc
        if error is not None:
            assert error.problems
            assert "pw-secret" not in str(error)
            return
        asyncio.run(registry.aclose())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    _outcome(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_arbitrary_yaml_structures(value: Any) -> None:
    _outcome(yaml.safe_dump(value))


paths = st.lists(
    st.sampled_from(
        [
            "adapters",
            "store",
            "front",
            "config",
            "uses",
            "backing",
            "port",
            "adapter",
            "max_entries",
            "profiles",
            "p",
            "schema_version",
            "default",
            "protection",
            "timeout",
            "seconds",
            "password",
        ]
    ),
    min_size=1,
    max_size=5,
)


def _mutate(tree: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    if not isinstance(tree, dict):
        return tree
    out = dict(tree)
    if len(path) == 1 and value == "<delete>":
        out.pop(path[0], None)
        return out
    out[path[0]] = _mutate(out.get(path[0], {}), path[1:], value)
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(paths, st.one_of(values, st.just("<delete>"))), min_size=1, max_size=3))
def test_mutated_valid_manifest(mutations: list[tuple[list[str], Any]]) -> None:
    tree: Any = VALID
    for path, value in mutations:
        tree = _mutate(tree, path, value)
    _outcome(yaml.safe_dump(tree))


def test_the_valid_manifest_wires() -> None:
    _outcome(yaml.safe_dump(VALID))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.yaml"
        path.write_text(yaml.safe_dump(VALID))
        registry = Registry.from_manifest(path, environ={"PW": "pw-secret"})
        assert registry.names() == ["store", "front"]
        asyncio.run(registry.aclose())
