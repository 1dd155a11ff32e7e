"""File names of ids: injective, file-system safe, reversible when short; anything that is not
a name this encoding produces reads back as ``None``."""

from __future__ import annotations

import pytest

from portfolio_core.adapters._shared.names import MAX_NAME, file_name, name_of
from portfolio_core.ports import InvalidInputError


@pytest.mark.parametrize("name", ["plain-name_1", "with/slash:colon", "café ☕", "%7E"])
def test_a_short_name_reads_back_as_itself(name: str) -> None:
    encoded = file_name(name)
    assert set(encoded) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_%ABCDEF")
    assert name_of(encoded) == name


def test_a_long_name_is_hashed_to_the_limit_and_does_not_read_back() -> None:
    encoded = file_name("x" * 500)
    assert len(encoded) == MAX_NAME
    assert "~" in encoded
    assert name_of(encoded) is None
    assert file_name("x" * 501) != encoded


@pytest.mark.parametrize("bad", ["", 7])
def test_an_empty_or_non_string_name_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="stream must be a non-empty string"):
        file_name(bad, what="stream")  # type: ignore[arg-type]


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        file_name("a\udc80b")


@pytest.mark.parametrize(
    "encoded",
    ["%zz", "%C3", "UPPER", "a b", "%61", ""],
    ids=["bad-hex", "cut-utf8", "uppercase", "space", "needless-escape", "empty"],
)
def test_what_this_encoding_does_not_produce_reads_back_as_none(encoded: str) -> None:
    assert name_of(encoded) is None
