"""The example adapter of docs/ports/config_store.md passes the ConfigStore contract suite."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.testing.contracts.config_store import ConfigStoreContract

PAGE = Path(__file__).resolve().parents[2] / "docs" / "ports" / "config_store.md"


def _example_class() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    (code,) = [b for b in blocks if "class ListConfigStore" in b]
    namespace: dict[str, Any] = {"__name__": "docs_config_store"}
    exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace["ListConfigStore"]


ListConfigStore = _example_class()


class TestDocsExampleConfigStore(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(self) -> Any:
        return ListConfigStore
