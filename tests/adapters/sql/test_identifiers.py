"""SQL table names are plain identifiers, checked before they reach a statement."""

from __future__ import annotations

import pytest

from portfolio_core.adapters.sql._identifiers import check_identifier


@pytest.mark.parametrize("name", ["t", "_t", "pc_snapshots", "T1", "x" * 63])
def test_plain_identifiers_pass_unchanged(name: str) -> None:
    assert check_identifier(name) == name


@pytest.mark.parametrize("name", ["", "1t", "t-1", "t; DROP TABLE x", 't"', "x" * 64, "ünï", "t\n"])
def test_anything_else_is_refused_naming_what_it_is(name: str) -> None:
    with pytest.raises(ValueError, match=r"^stream table .* is not a plain SQL identifier"):
        check_identifier(name, "stream table")
