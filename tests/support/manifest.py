"""Fixtures for tests that load manifests: ``write`` YAML files, install fake
``entry_points``. Registered for the whole suite as a plugin by ``tests/conftest.py``."""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.manifest import _resolve
from portfolio_core.manifest import secrets as secrets_module

FAKES = "tests.manifest.fakes"


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """write(name, yaml_text) -> path; the text is dedented and starts at line 1."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@dataclass
class FakeDist:
    name: str


@dataclass
class FakeEntryPoint:
    """An entry point of a distribution that is not installed; ``value`` is parsed as
    ``importlib.metadata.EntryPoint`` parses it (``module:attr [extra, ...]``)."""

    name: str
    value: str
    group: str
    dist: FakeDist

    @property
    def _parsed(self) -> EntryPoint:
        return EntryPoint(self.name, self.value, self.group)

    @property
    def module(self) -> str:
        return self._parsed.module

    @property
    def attr(self) -> str:
        return self._parsed.attr

    @property
    def extras(self) -> list[str]:
        return list(self._parsed.extras)

    def load(self) -> Any:
        return getattr(importlib.import_module(self.module), self.attr)


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """install(group_suffix_or_group, name, value, dist="dist-a") adds a fake entry point."""
    installed: list[FakeEntryPoint] = []

    def fake(*, group: str) -> list[FakeEntryPoint]:
        return [ep for ep in installed if ep.group == group]

    monkeypatch.setattr(_resolve, "entry_points", fake)
    monkeypatch.setattr(secrets_module, "entry_points", fake)

    def install(group: str, name: str, value: str, dist: str = "dist-a") -> None:
        if "." not in group:
            group = f"portfolio_core.adapters.{group}"
        installed.append(FakeEntryPoint(name, value, group, FakeDist(dist)))

    return install
