from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.portal.served import ServedRegistry


@pytest.fixture(scope="module")
def served() -> Iterator[ServedRegistry]:
    """A portal without credentials, for the tests of one module."""
    server = ServedRegistry()
    yield server
    server.stop()
