"""The example adapter of docs/ports/projection_store.md passes the ProjectionStore suite."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.testing.contracts.projection_store import ProjectionStoreContract

PAGE = Path(__file__).resolve().parents[2] / "docs" / "ports" / "projection_store.md"


def _example_class() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    (code,) = [b for b in blocks if "class DictProjectionStore" in b]
    namespace: dict[str, Any] = {"__name__": "docs_projection_store"}
    exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace["DictProjectionStore"]


DictProjectionStore = _example_class()


class TestDocsExampleProjectionStore(ProjectionStoreContract):
    @pytest.fixture
    def make_adapter(self) -> Any:
        return DictProjectionStore
