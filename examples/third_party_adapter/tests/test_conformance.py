"""acme-tokenizer honours the Tokenizer port: the portfolio-core conformance kit says so."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from acme_tokenizer import CharTokenizer

from portfolio_core.testing.contracts.tokenizer import TokenizerContract


class TestCharTokenizer(TokenizerContract):
    @pytest.fixture
    def make_adapter(self) -> type[CharTokenizer]:
        return CharTokenizer


def test_registered_by_entry_point() -> None:
    (found,) = entry_points(group="portfolio_core.adapters.tokenizer", name="acme_char")
    assert found.load() is CharTokenizer
