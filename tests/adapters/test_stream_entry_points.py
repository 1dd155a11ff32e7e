"""The stream adapters are registered under their short names and wire from config."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from portfolio_core.ports import Stream


@pytest.mark.parametrize(
    ("name", "config"),
    [("memory", {}), ("redis", {"url": "redis://127.0.0.1:6379/0"}), ("jsonl", {"root": "."})],
)
def test_entry_point_wires_from_config(name: str, config: dict[str, str], tmp_path: Path) -> None:
    found = {ep.name: ep for ep in entry_points(group="portfolio_core.adapters.stream")}
    cls = found[name].load()
    if name == "jsonl":
        config = {"root": str(tmp_path)}
    adapter = cls.from_config(cls.config_model.model_validate(config))
    assert isinstance(adapter, Stream)
    assert type(adapter) is cls
