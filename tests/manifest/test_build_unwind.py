"""A build that fails closes what it already built, with the same rule as
``Registry.aclose`` (``aclose()`` first), whether or not an event loop is running."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.manifest import ManifestError, load
from tests.manifest import fakes

Write = Callable[[str, str], Path]
F = "tests.manifest.fakes"


@pytest.fixture
def failing_build(write: Write) -> Path:
    return write(
        "m.yaml",
        f"""
        schema_version: 1
        adapters:
          first:
            port: cache
            adapter: {F}:DictCache
            config: {{namespace: first}}
          second:
            port: cache
            adapter: {F}:TwoCloses
            config: {{namespace: second}}
          broken:
            port: cache
            adapter: {F}:ExplodingCache
            uses: {{backing: second}}
        """,
    )


def assert_unwound() -> None:
    assert sorted(e for e in fakes.EVENTS if "close" in e or "stop" in e) == [
        "stop first",
        "stop second",
    ]


def test_a_failed_build_closes_what_it_built(failing_build: Path) -> None:
    fakes.EVENTS.clear()
    with pytest.raises(ManifestError, match="from_config raised"):
        load(failing_build)
    assert_unwound()


async def test_a_failed_build_closes_what_it_built_inside_a_running_loop(
    failing_build: Path,
) -> None:
    fakes.EVENTS.clear()
    with pytest.raises(ManifestError, match="from_config raised"):
        load(failing_build)
    assert_unwound()
