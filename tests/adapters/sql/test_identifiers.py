"""SQL table names are plain identifiers, checked before they reach a statement."""

from __future__ import annotations

from typing import Any

import pytest

from portfolio_core.adapters.sql._identifiers import check_identifier
from portfolio_core.ports import InvalidInputError


@pytest.mark.parametrize("name", ["t", "_t", "pc_snapshots", "T1", "x" * 63])
def test_plain_identifiers_pass_unchanged(name: str) -> None:
    assert check_identifier(name) == name


@pytest.mark.parametrize(
    "name", ["", "1t", "t-1", "t; DROP TABLE x", 't"', "x" * 64, "ünï", "t\n", None, 7, b"t"]
)
def test_anything_else_is_invalid_input_naming_what_it_is(name: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"^stream table .* is not a plain SQL identifier"):
        check_identifier(name, "stream table")


def test_the_error_names_the_field() -> None:
    with pytest.raises(InvalidInputError) as info:
        check_identifier("t-1")
    assert info.value.field == "table"
    with pytest.raises(InvalidInputError) as info:
        check_identifier("t-1", "index", field="index")
    assert info.value.field == "index"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param("portfolio_core.adapters.sql.config_store:SQLiteConfigStore", id="config"),
        pytest.param("portfolio_core.adapters.sql.snapshot_store:SQLiteSnapshotStore", id="snap"),
        pytest.param(
            "portfolio_core.adapters.sql.projection_store:SQLiteProjectionStore", id="projection"
        ),
    ],
)
def test_sql_stores_refuse_a_bad_table_name_as_invalid_input(make: str, tmp_path: Any) -> None:
    import importlib

    module, _, name = make.partition(":")
    cls = getattr(importlib.import_module(module), name)
    with pytest.raises(InvalidInputError) as info:
        cls(tmp_path / "x.db", table="t; DROP TABLE x")
    assert info.value.field == "table"
