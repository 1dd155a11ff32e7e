"""The example adapter of docs/ports/snapshot_store.md passes the SnapshotStore contract suite."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.testing.contracts.snapshot_store import SnapshotStoreContract

PAGE = Path(__file__).resolve().parents[2] / "docs" / "ports" / "snapshot_store.md"


def _example_class() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    (code,) = [b for b in blocks if "class DictSnapshotStore" in b]
    namespace: dict[str, Any] = {"__name__": "docs_snapshot_store"}
    exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace["DictSnapshotStore"]


DictSnapshotStore = _example_class()


class TestDocsExampleSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def make_adapter(self) -> Any:
        return DictSnapshotStore
