"""The Tokenizer contract suite passes on a correct tokenizer."""

from __future__ import annotations

import pytest

from portfolio_core.testing.contracts.tokenizer import TokenizerContract
from tests.testing.adapters import ByteTokenizer


class TestByteTokenizer(TokenizerContract):
    @pytest.fixture
    def make_adapter(self) -> type[ByteTokenizer]:
        return ByteTokenizer
